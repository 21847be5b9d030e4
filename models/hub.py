"""Resolving ``hf-hub:ORG/REPO[/FILE]`` sources to local files through huggingface_hub.

Downloads land in huggingface_hub's cache and honour its settings (``HF_HOME``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE=1``), so a model fetched once loads offline afterwards. ``hf_hub:`` (the spelling of the
reference README) is accepted too.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import CheckpointError

HUB_PREFIXES = ("hf-hub:", "hf_hub:")
# timm-style repos hold one of these; the first that exists wins
DEFAULT_FILES = ("model.safetensors", "pytorch_model.bin")


def is_hub_source(source: str | Path) -> bool:
    """True for ``hf-hub:...`` / ``hf_hub:...`` strings."""
    return isinstance(source, str) and source.startswith(HUB_PREFIXES)


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

    repo_id, filename = parse_hub_source(source)
    candidates = (filename,) if filename else DEFAULT_FILES
    last_error: Exception | None = None
    for name in candidates:
        try:
            return Path(huggingface_hub.hf_hub_download(repo_id, name, library_name="lsnet-deploy"))
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
        return json.loads(config.read_text())
    except (OSError, ValueError):
        return {}
