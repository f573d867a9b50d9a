"""Experiment configs: schema, composition from parts, dotted overrides, one-line errors.

An experiment file picks its parts with a ``defaults`` mapping and then overrides any key::

    # configs/experiments/adding_lstm.yaml
    defaults:
      model: lstm        # configs/models/lstm.yaml
      task: adding       # configs/tasks/adding.yaml
      optim: adam        # configs/optim/adam.yaml
    model:
      hidden_size: 64
    train:
      steps: 1500

Parts live in ``<root>/models``, ``<root>/tasks`` and ``<root>/optim`` where ``<root>`` is the parent
of the experiment file's folder (``configs/``); a value ending in ``.yaml`` is a path relative to the
experiment file instead.  Layers merge in order -- parts, the experiment file, then command-line
overrides (``model.hidden_size=256 optim.lr=3e-3``) -- with OmegaConf structured configs, so every
layer is checked against a typed schema.  A command-line ``model=gru`` (``task=...``, ``optim=...``)
swaps the part file itself, like a Hydra group override.  Schemas:

* top level, ``optim`` and ``train``: the dataclasses below;
* ``task``: ``name`` plus the registered task's options dataclass
  (:func:`seqjax.tasks.get_task`);
* ``model``: the schema the workload gives for ``model.name`` (for the default ``supervised``
  workload: ``name``, ``embed_dim`` plus the backbone's options dataclass from
  :func:`seqjax.models.registry.get_backbone`).

Every problem (missing file, unknown key -- with the closest allowed key --, wrong type, unknown name,
a value outside its choices) raises :class:`~seqjax.errors.UserError` with one line naming the key,
the file and the allowed values.  The resolved config (``defaults`` expanded) is what a run directory
stores as ``config.yaml``; loading a run directory loads that file.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqjax.errors import UserError
from seqjax.experiment.schema import with_name

PART_DIRS = {"model": "models", "task": "tasks", "optim": "optim"}


RUN_CONFIG = "config.yaml"


@dataclasses.dataclass
class OptimConfig:
    """``optax.chain(clip_by_global_norm(clip_norm), <name>(schedule))``; see :mod:`seqjax.experiment.optim`."""

    name: str = "adam"  # adam | adamw | rmsprop | sgd
    lr: float = 1e-3
    schedule: str = "constant"  # constant | warmup_cosine
    warmup_steps: int = 0
    final_lr_fraction: float = 0.0  # warmup_cosine ends at lr * final_lr_fraction
    clip_norm: Optional[float] = 1.0  # theta of clip_by_global_norm; null: no clipping
    weight_decay: float = 0.0  # adamw only
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    momentum: float = 0.9  # sgd (heavy ball); rmsprop momentum
    nesterov: bool = False  # sgd
    decay: float = 0.9  # rmsprop
    ssm_lr: Optional[float] = None  # set: SSM parameters get this lr and no weight decay


@dataclasses.dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32
    log_every: int = 10
    eval_every: int = 100
    eval_examples: int = 512
    test_examples: int = 1024
    eval_batch_size: int = 256
    checkpoint_every: int = 500  # a multiple of eval_every: each checkpoint carries its validation metrics
    keep_latest: int = 2  # newest checkpoints kept (more than 1 leaves a fallback if the latest is damaged)
    keep_best: int = 1  # plus the best keep_best by best_metric
    best_metric: str = "loss"
    best_mode: str = "min"  # min | max
    async_checkpoint: bool = True
    on_nan: str = "stop"  # stop | skip
    progress: bool = True


@dataclasses.dataclass
class ExperimentConfig:
    name: str = "experiment"
    workload: str = "supervised"
    seed: int = 0  # parameter init and dropout
    data_seed: int = 0  # training stream and the fixed val / test sets
    run_dir: Optional[str] = None  # default: runs/<name>
    model: Any = None
    task: Any = None
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


CHOICES = {
    "optim.name": ("adam", "adamw", "rmsprop", "sgd"),
    "optim.schedule": ("constant", "warmup_cosine"),
    "train.best_mode": ("min", "max"),
    "train.on_nan": ("stop", "skip"),
}


POSITIVE = ("train.steps", "train.batch_size", "train.log_every", "train.eval_every", "train.eval_examples",
            "train.test_examples", "train.eval_batch_size", "train.checkpoint_every", "train.keep_latest", "train.keep_best")


def load_config(path: str | Path, overrides: list[str] = ()) -> DictConfig:
    """Compose, override and validate an experiment (a YAML file, or a run directory) -> typed config."""
    path = Path(path)
    swaps = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] in PART_DIRS}
    overrides = [o for o in overrides if o.split("=", 1)[0] not in PART_DIRS]
    if path.is_dir() and swaps:
        raise UserError(f"command line: {next(iter(swaps))}=... swaps a config part; a run directory is resumed "
                        "unchanged: start a new run from an experiment file instead")
    if path.is_dir():
        if not (path / RUN_CONFIG).exists():
            raise UserError(f"{path} is a directory without {RUN_CONFIG}: give an experiment file "
                            "(configs/experiments/*.yaml) or a run directory")
        layers = [(str(path / RUN_CONFIG), _read(path / RUN_CONFIG)),
                  ("run directory", OmegaConf.create({"run_dir": str(path)}))]  # wherever it now lives
    else:
        layers = [("defaults", OmegaConf.create({"name": path.stem})), *_expand_defaults(path, swaps)]
    if overrides:
        layers.append(("command line", _parse_overrides(overrides)))
    workload = _workload(layers)
    schema = OmegaConf.structured(ExperimentConfig(
        model=_named(layers, "model", workload.model_schema)(), task=_task_schema(layers)()))
    names = {section: _last_set(layers, section, "name") for section in ("model", "task")}
    for source, layer in layers:
        _check_keys(layer, schema, source, "", names)
        try:
            schema = OmegaConf.merge(schema, layer)
        except OmegaConfBaseException as e:
            raise UserError(f"{source}: {omegaconf_message(e)}") from None
    _check_values(schema, layers)
    if workload.validate is not None:
        workload.validate(schema)
    if schema.run_dir is None:
        schema.run_dir = str(Path("runs") / schema.name)
    return schema


def omegaconf_message(error: OmegaConfBaseException) -> str:
    """``"<full key>: <first line of OmegaConf's message>"`` for a one-line error."""
    return f"{getattr(error, 'full_key', '') or ''}: {str(getattr(error, 'msg', error)).splitlines()[0]}"


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def _read(path: Path) -> DictConfig:
    if not path.exists():
        raise UserError(f"config file {str(path)!r} not found: check the path")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml.YAMLError and friends: report the first line only
        raise UserError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(cfg, DictConfig):
        raise UserError(f"{path}: a config file must be a mapping of keys to values, got a list")
    return cfg


def _expand_defaults(path: Path, swaps: dict[str, str]) -> list[tuple[str, DictConfig]]:
    """Part layers then the experiment; ``swaps`` (``model=gru`` on the command line) replace parts."""
    exp = _read(path)
    defaults = exp.pop("defaults", None) or {}
    if not isinstance(defaults, (DictConfig, dict)):
        raise UserError(f"{path}: 'defaults' must map a part to a file name, e.g. 'defaults: {{model: lstm}}'")
    defaults = {**defaults, **swaps}
    layers = []
    for part, name in defaults.items():
        if part not in PART_DIRS:
            raise UserError(f"{path}: unknown key 'defaults.{part}'{_did_you_mean(part, PART_DIRS)}; "
                            f"allowed: {', '.join(PART_DIRS)}")
        part_path = _part_path(path, part, str(name))
        layers.append((str(part_path), OmegaConf.create({part: _read(part_path)})))
    return [*layers, (str(path), exp)]


def _part_path(exp_path: Path, part: str, name: str) -> Path:
    if name.endswith(".yaml"):
        return exp_path.parent / name
    folder = exp_path.resolve().parent.parent / PART_DIRS[part]
    candidate = folder / f"{name}.yaml"
    if not candidate.exists():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise UserError(f"{exp_path}: defaults.{part}={name!r}: {candidate} not found"
                        f"{_did_you_mean(name, known)}; choose one of {', '.join(known) or '(none)'}")
    return candidate


def _parse_overrides(overrides: list[str]) -> DictConfig:
    bad = [o for o in overrides if "=" not in o or o.startswith("=")]
    if bad:
        raise UserError(f"command line: override {bad[0]!r} is not KEY=VALUE, e.g. model.hidden_size=256")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as e:
        raise UserError(f"command line: cannot parse overrides: {str(e).splitlines()[0]}") from None


def _last_set(layers: list[tuple[str, DictConfig]], section: str, key: str, default: Any = None) -> tuple[Any, str]:
    """The value of ``section.key`` in the last layer that sets it, and that layer's name."""
    found = (default, [src for src, _ in layers if src != "command line"][-1])
    for source, layer in layers:
        node = layer.get(section) if section else layer
        if isinstance(node, DictConfig) and node.get(key) is not None:
            found = (node.get(key), source)
    return found


def _named(layers, section: str, lookup) -> type:
    name, source = _last_set(layers, section, "name")
    if name is None:
        raise UserError(f"{source}: {section}.name is not set: add 'defaults: {{{section}: ...}}' or "
                        f"'{section}.name=...'")
    try:
        return lookup(str(name))
    except UserError as e:
        known = str(e).rpartition("choose one of ")[2].split(", ")
        raise UserError(f"{source}: {section}.name: {e}{_did_you_mean(str(name), known)}") from None


def _workload(layers) -> Any:
    from seqjax.experiment.workloads import get_workload

    workload, source = _last_set(layers, "", "workload", "supervised")
    try:
        return get_workload(str(workload))
    except UserError as e:
        raise UserError(f"{source}: workload: {e}") from None


def _task_schema(layers) -> type:
    from seqjax.tasks import get_task

    return _named(layers, "task", lambda name: with_name(get_task(name).options, name))


def _check_keys(layer: Any, schema: Any, source: str, prefix: str, names: dict) -> None:
    """Unknown keys (recursively), with the closest allowed key."""
    if not isinstance(layer, DictConfig) or not isinstance(schema, DictConfig):
        return
    allowed = list(schema.keys())
    if OmegaConf.get_type(schema) is dict:  # a free-form mapping: anything goes
        return
    for key in layer.keys():
        if key not in allowed:
            where = prefix.rstrip(".") or "the top level"
            hint = ""
            if prefix in ("model.", "task."):
                name, name_source = names[prefix[:-1]]
                hint = "" if name_source == source else (
                    f" for {prefix[:-1]} {name!r} (named in {name_source}; to switch family, swap the part file"
                    f" with {prefix[:-1]}={name} and drop keys of the old one)")
            raise UserError(f"{source}: unknown key '{prefix}{key}'{_did_you_mean(str(key), allowed)}{hint}; "
                            f"allowed keys in {where}: {', '.join(sorted(map(str, allowed)))}")
        child = layer._get_node(key)
        if isinstance(child, DictConfig) and not isinstance(child, ListConfig):
            _check_keys(child, schema._get_node(key), source, f"{prefix}{key}.", names)


def _did_you_mean(key: str, allowed) -> str:
    close = difflib.get_close_matches(key, [str(a) for a in allowed], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_values(cfg: DictConfig, layers) -> None:
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            _, source = _last_set(layers, *key.split("."))
            raise UserError(f"{source}: {key}={value!r} is not allowed; choose one of {', '.join(allowed)}")
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        if value <= 0:
            _, source = _last_set(layers, *key.split("."))
            raise UserError(f"{source}: {key}={value} must be a positive integer")
    t = cfg.train
    if t.checkpoint_every % t.eval_every:
        raise UserError(f"train.checkpoint_every={t.checkpoint_every} must be a multiple of "
                        f"train.eval_every={t.eval_every} (each checkpoint is ranked by its validation metric)")
