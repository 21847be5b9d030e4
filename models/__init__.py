"""LSNet in PyTorch: the reference module tree, checkpoint loading, SKA formulations.

Installed as ``lsnet_deploy.models`` (see pyproject's package-dir mapping).
"""

from .arch import infer_config
from .backbone import BIAS_MODES, FeatureInfo, LSNetBackbone
from .checkpoint import read_state_dict
from .factory import create_model, list_models, load_model, load_state_dict_checked
from .lsnet import IMAGENET_MEAN, IMAGENET_STD, LSNet, stage_grids, variant_names
from .outputs import ClassifierOutputs
from .ska import EXPORTABLE_SKA_FORMS, SKA, SKA_FORMS

__all__ = ["create_model", "list_models", "load_model", "load_state_dict_checked", "infer_config",
           "read_state_dict", "LSNet", "SKA", "SKA_FORMS", "EXPORTABLE_SKA_FORMS", "stage_grids",
           "variant_names", "IMAGENET_MEAN", "IMAGENET_STD", "LSNetBackbone", "FeatureInfo", "BIAS_MODES",
           "ClassifierOutputs"]
