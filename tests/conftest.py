"""Suite-wide settings: tiny models run fastest on one thread (and subprocesses inherit it); fixtures the
training tests share."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (restored after): tiny matrices run several times faster than on
    oversubscribed cores, and a killed subprocess (OMP_NUM_THREADS=1) sums floats in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_run_root(tmp_path_factory):
    """`make(name, varied=False, llm_arch="llama")`: a fresh folder holding the tiny training recipe `tiny.yaml`
    and its fixtures (train_tiny.write_recipe) on a tiny `llm_arch` LLM, with `varied` also the answers of very
    different lengths (write_varied_easyvqa)."""
    from train_tiny import write_recipe, write_varied_easyvqa

    def make(name: str, varied: bool = False, llm_arch: str = "llama"):
        root = tmp_path_factory.mktemp(name)
        write_recipe(root, llm_arch=llm_arch)
        if varied:
            write_varied_easyvqa(root)
        return root
    return make
