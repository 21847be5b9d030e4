"""Resolving ``hf-hub:ORG/REPO[/FILE]`` sources to local files through huggingface_hub.

Downloads land in huggingface_hub's cache and honour its settings (``HF_HOME``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE=1``), so a model fetched once loads offline afterwards. ``hf_hub:`` (the spelling of the
reference README) is accepted too.

An unreachable hub fails within seconds: one HEAD request without retries (``HF_HUB_ETAG_TIMEOUT``
seconds at most, default 5 here) decides between downloading and falling back to the cache, because
huggingface_hub itself retries unreachable hosts with backoff for most of a minute.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

from ..constants import HUB_PREFIXES, is_hub_source
from ..errors import CheckpointError

# timm-style repos hold one of these; the first that exists wins
DEFAULT_FILES = ("model.safetensors", "pytorch_model.bin")
PROBE_TIMEOUT_S = 5.0


def _probe_timeout() -> float:
    try:
        return float(os.environ["HF_HUB_ETAG_TIMEOUT"])
    except (KeyError, ValueError):
        return PROBE_TIMEOUT_S


def hub_reachable(repo_id: str, filename: str) -> bool:
    """One HEAD request for the file, no retries: False when the hub cannot be reached at all.

    HTTP answers (missing file, unknown repo, ...) count as reachable; ``hf_hub_download`` reports them.
    """
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    options = {"timeout": _probe_timeout()}
    if "retry_on_errors" in inspect.signature(huggingface_hub.get_hf_file_metadata).parameters:
        options["retry_on_errors"] = False
    try:
        huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(repo_id, filename), **options)
    except (hub_errors.HfHubHTTPError, hub_errors.OfflineModeIsEnabled):
        return True
    except Exception:  # the transport's own connection and timeout errors (requests, httpx, ...)
        return False
    return True


def parse_hub_source(source: str) -> tuple[str, str | None]:
    """``hf-hub:ORG/REPO/sub/file.pth`` -> (``ORG/REPO``, ``sub/file.pth``); FILE is optional.

    Raises:
        CheckpointError: when ORG/REPO is missing.
    """
    spec = source.split(":", 1)[1].strip("/")
    parts = spec.split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise CheckpointError(f"bad hub source {source!r}: expected hf-hub:ORG/REPO or hf-hub:ORG/REPO/FILE")
    filename = "/".join(parts[2:]) or None
    return "/".join(parts[:2]), filename


def download_from_hub(source: str) -> Path:
    """Return a local path for a hub checkpoint, downloading it into the cache if needed.

    Raises:
        CheckpointError: unknown repo or file, no network and nothing cached, or offline mode without a
            cached copy.
    """
    try:
        import huggingface_hub
        from huggingface_hub import errors as hub_errors
    except ImportError:
        raise CheckpointError('hub sources need huggingface_hub: pip install huggingface_hub') from None

    from huggingface_hub import constants as hub_constants

    repo_id, filename = parse_hub_source(source)
    candidates = (filename,) if filename else DEFAULT_FILES
    cache_only = not hub_constants.HF_HUB_OFFLINE and not hub_reachable(repo_id, candidates[0])
    last_error: Exception | None = None
    for name in candidates:
        try:
            return Path(huggingface_hub.hf_hub_download(repo_id, name, library_name="lsnet-deploy",
                                                        local_files_only=cache_only,
                                                        etag_timeout=_probe_timeout()))
        except (hub_errors.EntryNotFoundError, hub_errors.LocalEntryNotFoundError) as exc:
            last_error = exc
        except (hub_errors.RepositoryNotFoundError, hub_errors.GatedRepoError, hub_errors.RevisionNotFoundError):
            raise CheckpointError(f"hub repository {repo_id!r} not found or not accessible "
                                  "(check the name, or log in with `hf auth login` for gated repos)") from None
        except hub_errors.HfHubHTTPError as exc:
            raise CheckpointError(f"could not fetch {repo_id}/{name} from the hub: {exc}") from None
    tried = ", ".join(candidates)
    offline = isinstance(last_error, hub_errors.LocalEntryNotFoundError)
    if offline:
        raise CheckpointError(f"{repo_id}: {tried} not in the local hub cache and the hub cannot be reached "
                              "(offline, or HF_HUB_OFFLINE=1); download it once online or pass a local file")
    raise CheckpointError(f"{repo_id} has no {tried}; name the file: hf-hub:{repo_id}/FILE")


def read_hub_config(weights: Path) -> dict:
    """The timm ``config.json`` beside a hub weights file, if there is one (else ``{}``)."""
    config = weights.parent / "config.json"
    if not config.is_file():
        return {}
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


__all__ = ["HUB_PREFIXES", "DEFAULT_FILES", "is_hub_source", "hub_reachable", "parse_hub_source", "download_from_hub",
           "read_hub_config"]
