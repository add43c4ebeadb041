"""Helpers of the server tests: a real `ademvl serve` process, raw HTTP posts, images as data: URLs."""
from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request


def running_server(*argv: str):
    """`ademvl serve ARGV` on CPU, one thread, on a free port; yields its base URL."""
    from child_process import running_server as serve

    return serve("--device", "cpu", *argv, threads=1)


def post(url: str, body: bytes | dict, timeout: float = 60.0,
         content_type: str = "application/json") -> tuple[int, dict]:
    """POST raw bytes or a JSON object; (status, parsed JSON body) whatever the status."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def data_url(path) -> str:
    with open(path, "rb") as handle:
        return "data:image/png;base64," + base64.b64encode(handle.read()).decode()


def png_data_url(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def templated_adapter(root, run_name: str, template: str):
    """A tiny trained adapter at `root/run_name/adapter` that records `template` as its prompt template."""
    import shutil

    from ademvl.checkpoint import CONFIG_NAME, atomic_write_json, read_adapter_config
    from tiny_eval import make_checkpoint

    adapter = root / run_name / "adapter"
    shutil.copytree(make_checkpoint(root), adapter)
    atomic_write_json(adapter / CONFIG_NAME, {**read_adapter_config(adapter), "prompt_template": template})
    return adapter
