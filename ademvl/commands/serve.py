"""Serve a saved adapter over HTTP: OpenAI's chat-completions API and a web chat page.

    ademvl demo                   # tunes runs/demo/ademvl/adapter (offline)
    ademvl serve                  # http://127.0.0.1:8000/ (page), /v1/chat/completions, /v1/completions,
                                  # /v1/models, /metrics (Prometheus)

The model is loaded once; one worker thread runs it, and concurrent requests
are batched (up to --max-batch rows per generate call). Questions are wrapped in
the adapter's training template; images come as base64 data: URLs. Needs the
`serve` extra: pip install 'ademvl[serve]'. OpenAI's parameters are served as OpenAI
defines them (sampling, seed, n, penalties, logit_bias, logprobs, JSON response
formats) or refused with a 400 naming them (tools, audio, ...).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .eval import add_model_arguments

DEMO_ADAPTER = "runs/demo/ademvl/adapter"  # where `ademvl demo` leaves its ADEM-VL adapter


def add_arguments(parser) -> None:
    add_model_arguments(parser, checkpoint_default=DEMO_ADAPTER)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port")
    parser.add_argument("--served-model-name", metavar="NAME",
                        help="the model id clients send (default: the adapter's run name, e.g. 'ademvl' for "
                             "runs/demo/ademvl/adapter)")
    parser.add_argument("--max-batch", type=int, default=8, help="most concurrent requests generated together")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0,
                        help="how long a request waits for others to share its batch")
    parser.add_argument("--max-tokens", type=int, default=64, help="answer length when a request gives no max_tokens")
    parser.add_argument("--context-length", type=int, help="prompt + answer tokens allowed (default: the LLM's)")
    parser.add_argument("--template", default=None,
                        help="wrapping for each question (default: the adapter's training template)")
    parser.add_argument("--require-image", action="store_true",
                        help="refuse text-only requests (400) instead of answering them with 'Image: N/A'")
    parser.add_argument("--max-image-mb", type=float, default=10.0, help="largest accepted image file, in MB")
    parser.add_argument("--max-body-mb", type=float, default=None,
                        help="largest request body, in MB (default: the image limit as base64 + 4 MB); larger "
                             "ones get 413 without being read")
    parser.add_argument("--api-key", metavar="KEY", default=None,
                        help="require 'Authorization: Bearer KEY' on /v1/* and /info (what OpenAI clients send as "
                             "api_key); also read from $ADEMVL_API_KEY. Without one, a non-loopback --host is "
                             "served with a warning")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                        help="uvicorn's log level")


def served_name(checkpoint: str) -> str:
    """'ademvl' for runs/demo/ademvl/adapter: the run directory, since adapters are all called 'adapter'."""
    path = Path(checkpoint).resolve()
    return path.parent.name if path.name == "adapter" and path.parent.name else path.name


def _loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_address(host: str, port: int) -> None:
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise ValueError(f"cannot listen on {host}:{port}: {error.strerror or error} (choose another --port)") from None


def run(args) -> int:
    for option, value, low in (("--max-batch", args.max_batch, 1), ("--max-tokens", args.max_tokens, 1),
                               ("--port", args.port, 0), ("--batch-wait-ms", args.batch_wait_ms, 0),
                               ("--context-length", 1 if args.context_length is None else args.context_length, 1),
                               ("--max-image-mb", args.max_image_mb, 0),
                               ("--max-body-mb", 1 if args.max_body_mb is None else args.max_body_mb, 0.001)):
        if value < low:
            raise ValueError(f"{option} must be at least {low}, got {value}")
    if not Path(args.checkpoint).is_dir():
        hint = " (run `ademvl demo` first, or pass --checkpoint)" if args.checkpoint == DEMO_ADAPTER else ""
        raise FileNotFoundError(f"checkpoint directory not found: {args.checkpoint}{hint}")
    api_key = args.api_key or os.environ.get("ADEMVL_API_KEY") or None
    _check_address(args.host, args.port)  # before the model loads, so a busy port costs no wait
    if api_key is None and not _loopback(args.host):
        print(f"ademvl serve: warning: listening on {args.host} without --api-key: anyone who can reach this "
              "port can use the model", file=sys.stderr, flush=True)
    try:
        import uvicorn

        from ..serve import ServeSettings, create_app
    except ImportError as error:
        raise ImportError(f"ademvl serve needs {error.name}: pip install 'ademvl[serve]'") from error
    import torch

    from ..integrations import AdemVLChat

    if args.threads:
        torch.set_num_threads(args.threads)
    template = args.template and args.template.replace("\\n", "\n")
    chat = AdemVLChat.from_checkpoint(args.checkpoint, llm=args.llm, vision=args.vision, tokenizer=args.tokenizer,
                                      image_processor=args.image_processor, device=args.device, dtype=args.dtype,
                                      quantization=args.quantization, prompt_template=template)
    settings = ServeSettings(model_name=args.served_model_name or served_name(args.checkpoint),
                             checkpoint=str(args.checkpoint), max_batch=args.max_batch,
                             batch_wait=args.batch_wait_ms / 1000, max_tokens=args.max_tokens,
                             context_length=args.context_length, require_image=args.require_image,
                             max_image_bytes=int(args.max_image_mb * 1024 * 1024),
                             max_body_bytes=None if args.max_body_mb is None else int(args.max_body_mb * 1024 * 1024),
                             api_key=api_key)
    app = create_app(chat, settings)
    print(f"ademvl serve: model '{settings.model_name}' ({chat.model.config.method}, {args.checkpoint}) on "
          f"http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
