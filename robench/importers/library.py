"""Library networks: ``torchvision:NAME[:WEIGHTS]``, ``timm:NAME[:pretrained]``, ``robustbench:NAME``.

Importing may download the library's weights; rebuilding runs the library's constructor only (no download), the
stored weights are loaded after.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from robench.datasets import DatasetInfo
from robench.datasets import data_dir as default_data_dir
from robench.errors import RobenchError, unknown_name
from robench.importers.registry import Importer, Loaded, Spec
from robench.records import ModelRecord

RB_DATASETS = ("cifar10", "cifar100", "imagenet")


def download_error(what: str, url: str, err: Exception, where: Path, env: str) -> RobenchError:
    filename = Path(urlparse(url).path).name or url
    reason = str(err).strip().splitlines()[0][:80] if str(err).strip() else ""
    return RobenchError(f"cannot get the {what} ({type(err).__name__}: {reason}); they are read from {where} "
                        f"({env} moves it): put {filename} from {url} there, "
                        f"or import on a connected machine")


def torchvision_net(name: str, num_classes: int, weights: Any = None) -> nn.Module:
    """A torchvision classification network (``weights`` None: random init with ``num_classes`` outputs)."""
    import torchvision.models as tvm

    if weights is None:
        return tvm.get_model(name, weights=None, num_classes=num_classes)
    return tvm.get_model(name, weights=weights)


def need_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise RobenchError("timm models need the timm library: pip install 'robench[timm]'") from None
    return timm


def need_robustbench() -> Any:
    try:
        import robustbench
    except ImportError:
        raise RobenchError("robustbench models need the robustbench library: pip install 'robench[robustbench]'") \
            from None
    return robustbench


class Torchvision(Importer):
    def load(self, spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
        import torchvision
        import torchvision.models as tvm

        names = tvm.list_models(module=tvm)
        if spec.name not in names:
            raise unknown_name("torchvision classification model", spec.name, names)
        loaded = Loaded(net=None, details={"name": spec.name, "weights": None},
                        versions={"torchvision": torchvision.__version__})
        if spec.option is None:
            loaded.net = torchvision_net(spec.name, data.num_classes)
            return loaded
        enum = tvm.get_model_weights(spec.name)
        choices = ["DEFAULT", *enum.__members__]
        if spec.option not in choices:
            raise unknown_name(f"weights for torchvision model {spec.name}", spec.option, choices)
        weights = enum.DEFAULT if spec.option == "DEFAULT" else enum[spec.option]
        try:
            loaded.net = torchvision_net(spec.name, 0, weights)
        except Exception as err:  # offline: URLError, HTTPError, OSError ...
            raise download_error(f"torchvision weights {weights}", weights.url, err,
                                 Path(torch.hub.get_dir()) / "checkpoints", "TORCH_HOME") from None
        preset = weights.transforms()
        loaded.preset = (list(preset.mean), list(preset.std))
        loaded.details.update(weights=str(weights).split(".")[-1], weights_url=weights.url,
                              weights_input_size=list(preset.crop_size))
        return loaded

    def rebuild(self, record: ModelRecord) -> nn.Module:
        details = record.origin.details
        return torchvision_net(details.name, details.model_classes)


class Timm(Importer):
    def load(self, spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
        timm = need_timm()
        if not timm.is_model(spec.name):
            close = difflib.get_close_matches(spec.name, timm.list_models(), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise RobenchError(f"unknown timm model '{spec.name}': {hint}see timm.list_models()")
        loaded = Loaded(net=None, details={"name": spec.name, "pretrained": spec.option == "pretrained"},
                        versions={"timm": timm.__version__})
        if spec.option == "pretrained":
            try:
                loaded.net = timm.create_model(spec.name, pretrained=True)
            except Exception as err:  # offline: the Hugging Face hub cannot be reached
                from huggingface_hub.constants import HF_HUB_CACHE

                cfg = timm.models.get_pretrained_cfg(spec.name)
                url = getattr(cfg, "hf_hub_id", None) or getattr(cfg, "url", None) or spec.name
                raise download_error(f"pretrained weights of timm model {spec.name}", str(url), err,
                                     Path(HF_HUB_CACHE), "HF_HOME") from None
            cfg = loaded.net.pretrained_cfg
            loaded.preset = (list(cfg["mean"]), list(cfg["std"]))
            loaded.details["weights_input_size"] = list(cfg.get("input_size", []))[1:]
        else:
            channels = 3 if options["gray_to_rgb"] else data.in_channels
            loaded.net = timm.create_model(spec.name, pretrained=False, num_classes=data.num_classes,
                                           in_chans=channels)
        return loaded

    def rebuild(self, record: ModelRecord) -> nn.Module:
        details = record.origin.details
        return need_timm().create_model(details.name, pretrained=False, num_classes=details.model_classes,
                                        in_chans=details.model_channels)


class RobustBench(Importer):
    def load(self, spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
        robustbench = need_robustbench()
        from robustbench.utils import load_model as rb_load_model

        rb_dataset = options["rb_dataset"] or (data.name if data.name in RB_DATASETS else None)
        if rb_dataset not in RB_DATASETS:
            raise RobenchError(f"robustbench:{spec.name} on {data.name}: pass --rb-dataset, one of "
                               f"{', '.join(RB_DATASETS)} (the RobustBench leaderboard the model is from)")
        threat = options["threat_model"] or "Linf"
        where = default_data_dir() / "robustbench"
        try:
            net = rb_load_model(model_name=spec.name, model_dir=str(where), dataset=rb_dataset, threat_model=threat)
        except (KeyError, ValueError) as err:
            raise RobenchError(f"RobustBench has no model '{spec.name}' for {rb_dataset} / {threat} ({err}); see "
                               f"its leaderboard, and --rb-dataset / --threat-model") from None
        except Exception as err:  # offline: the checkpoint cannot be downloaded
            raise RobenchError(f"cannot get RobustBench model {spec.name} ({type(err).__name__}); RobustBench keeps "
                               f"its checkpoints in {where / rb_dataset / threat}: put {spec.name}.pt there, or "
                               f"import on a connected machine") from None
        details = {"name": spec.name, "rb_dataset": rb_dataset, "threat_model": threat}
        timm_name = f"{spec.name.lower().replace('-', '_')}_{rb_dataset}_{threat.lower()}"
        try:
            import timm

            if timm.is_model(timm_name):  # RobustBench serves this entry through timm
                details["timm_name"] = timm_name
        except ImportError:
            pass
        return Loaded(net, details, versions={"robustbench": getattr(robustbench, "__version__", "?")},
                      config={"threat_model": threat})

    def rebuild(self, record: ModelRecord) -> nn.Module:
        """RobustBench's architecture for the entry, untrained (timm-hosted entries through timm)."""
        details = record.origin.details
        if details.timm_name:
            return need_timm().create_model(details.timm_name, pretrained=False, num_classes=details.model_classes)
        need_robustbench()
        from robustbench.model_zoo import model_dicts
        from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

        zoo = model_dicts[BenchmarkDataset(details.rb_dataset)][ThreatModel(details.threat_model)]
        return zoo[details.name]["model"]()
