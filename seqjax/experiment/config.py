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

Every field of every section is checked when the config loads, against its type (an ``int`` is a
whole number and not a bool, a ``float`` finite, a ``bool`` written ``true``/``false``, a path a
string) and the range or choices its dataclass declares beside it (:func:`seqjax.errors.checked`).
Every problem (missing file, bad YAML or override, unknown key -- with the closest allowed key --,
wrong type, unknown name, a value outside its range or choices, an unresolvable ``${...}``) raises
:class:`~seqjax.errors.UserError` with one line naming the layer (file or ``command line``), the key,
the value and what is allowed, e.g. ``command line: optim.b1=1.5 is out of range: must be in [0, 1)``.  The resolved config (``defaults`` expanded) is what a run directory
stores as ``config.yaml``; loading a run directory loads that file.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from omegaconf.nodes import BooleanNode

from seqjax.errors import (
    COUNT,
    NON_NEGATIVE,
    POSITIVE,
    UNIT,
    Range,
    UserError,
    check_choice,
    checked,
    did_you_mean,
    field_problem,
)
from seqjax.experiment.schema import with_name

PART_DIRS = {"model": "models", "task": "tasks", "optim": "optim"}


RUN_CONFIG = "config.yaml"

MOMENT = Range(0, 1, hi_open=True)  # Adam's b1/b2, momentum, RMSprop's decay
INT32 = Range(1, 2**31 - 1, integer=True)  # step counts, batch and set sizes are int32 on the device
SEED = Range(0, 2**32 - 1, integer=True)  # jax.random.key takes a uint32


@dataclasses.dataclass
class OptimConfig:
    """``optax.chain(clip_by_global_norm(clip_norm), <name>(schedule))``; see :mod:`seqjax.experiment.optim`."""

    name: str = checked("adam", choices=("adam", "adamw", "rmsprop", "sgd"))
    lr: float = checked(1e-3, POSITIVE)
    schedule: str = checked("constant", choices=("constant", "warmup_cosine"))
    warmup_steps: int = checked(0, NON_NEGATIVE)
    final_lr_fraction: float = checked(0.0, UNIT)  # warmup_cosine ends at lr * final_lr_fraction
    clip_norm: Optional[float] = checked(1.0, POSITIVE)  # theta of clip_by_global_norm; null: no clipping
    weight_decay: float = checked(0.0, NON_NEGATIVE)  # adamw only
    b1: float = checked(0.9, MOMENT)
    b2: float = checked(0.999, MOMENT)
    eps: float = checked(1e-8, POSITIVE)
    momentum: float = checked(0.9, MOMENT)  # sgd (heavy ball); rmsprop momentum
    nesterov: bool = False  # sgd
    decay: float = checked(0.9, MOMENT)  # rmsprop
    ssm_lr: Optional[float] = checked(None, POSITIVE)  # set: SSM parameters get this lr and no weight decay


@dataclasses.dataclass
class TrainConfig:
    steps: int = checked(1000, INT32)
    batch_size: int = checked(32, INT32)
    log_every: int = checked(10, INT32)
    eval_every: int = checked(100, INT32)
    eval_examples: int = checked(512, INT32)
    test_examples: int = checked(1024, INT32)
    eval_batch_size: int = checked(256, INT32)
    checkpoint_every: int = checked(500, INT32)  # a multiple of eval_every: each checkpoint carries its val metrics
    keep_latest: int = checked(2, COUNT)  # newest checkpoints kept (more than 1 leaves a fallback if one is damaged)
    keep_best: int = checked(1, COUNT)  # plus the best keep_best by best_metric
    best_metric: str = "loss"  # one of the workload's metrics (checked by the trainer, which knows them)
    best_mode: str = checked("min", choices=("min", "max"))
    async_checkpoint: bool = True
    on_nan: str = checked("stop", choices=("stop", "skip"))
    progress: bool = True
    restart: bool = False  # a run dir with metrics but no readable checkpoint: start over from step 0
    tbptt: Optional[int] = checked(None, COUNT)  # truncated BPTT: windows of K steps, state carried (workloads/windows)


@dataclasses.dataclass
class ExperimentConfig:
    name: str = "experiment"
    workload: str = "supervised"
    seed: int = checked(0, SEED)  # parameter init and dropout
    data_seed: int = checked(0, SEED)  # training stream and the fixed val / test sets
    run_dir: Optional[str] = None  # default: runs/<name>
    model: Any = None
    task: Any = None
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


def load_config(path: str | Path, overrides: list[str] = ()) -> DictConfig:
    """Compose, override and validate an experiment (a YAML file, or a run directory) -> typed config.

    >>> from pathlib import Path
    >>> import seqjax
    >>> path = Path(seqjax.__file__).parents[1] / "configs" / "experiments" / "adding_lstm.yaml"
    >>> cfg = load_config(path, ["model.hidden_size=32"])
    >>> cfg.model.name, cfg.model.hidden_size, cfg.task.name, cfg.run_dir
    ('lstm', 32, 'adding', 'runs/adding_lstm')
    >>> load_config(path, ["model.hiden_size=32"])
    Traceback (most recent call last):
    ...
    seqjax.errors.UserError: command line: unknown key 'model.hiden_size' (did you mean 'hidden_size'?) ...
    """
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
        layers = [(str(path / RUN_CONFIG), read_mapping(path / RUN_CONFIG)),
                  ("run directory", OmegaConf.create({"run_dir": str(path)}))]  # wherever it now lives
    else:
        layers = [("defaults", OmegaConf.create({"name": path.stem})), *_expand_defaults(path, swaps)]
    if overrides:
        layers.append(("command line", _parse_overrides(overrides)))
    workload = _workload(layers)
    sections = {"": ExperimentConfig, "optim": OptimConfig, "train": TrainConfig,
                "model": _named(layers, "model", workload.model_schema), "task": _task_schema(layers)}
    schema = OmegaConf.structured(ExperimentConfig(model=sections["model"](), task=sections["task"]()))
    names = {section: _last_set(layers, section, "name") for section in ("model", "task")}
    for source, layer in layers:
        _check_layer(layer, schema, source, "", names)
        try:
            schema = OmegaConf.merge(schema, layer)
        except OmegaConfBaseException as e:
            raise UserError(f"{source}: {omegaconf_message(e)}") from None
        except TypeError as e:  # OmegaConf's own for a mapping given where a list is expected, or the reverse
            raise UserError(f"{source}: {str(e).splitlines()[0]} (a mapping given where a list is expected, "
                            "or the reverse)") from None
    _resolve(schema, layers)
    _check_values(schema, layers, sections)
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


def read_mapping(path: Path) -> DictConfig:
    """A YAML file that must hold a mapping; one-line ``UserError`` when missing, not YAML, or a list."""
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
    exp = read_mapping(path)
    defaults = exp.pop("defaults", None) or {}
    if not isinstance(defaults, (DictConfig, dict)):
        raise UserError(f"{path}: 'defaults' must map a part to a file name, e.g. 'defaults: {{model: lstm}}'")
    defaults = {**defaults, **swaps}
    layers = []
    for part, name in defaults.items():
        if part not in PART_DIRS:
            raise UserError(f"{path}: unknown key 'defaults.{part}'{did_you_mean(part, PART_DIRS)}; "
                            f"allowed: {', '.join(PART_DIRS)}")
        part_path = _part_path(path, part, str(name))
        layers.append((str(part_path), OmegaConf.create({part: read_mapping(part_path)})))
    return [*layers, (str(path), exp)]


def _part_path(exp_path: Path, part: str, name: str) -> Path:
    if name.endswith(".yaml"):
        return exp_path.parent / name
    folder = exp_path.resolve().parent.parent / PART_DIRS[part]
    candidate = folder / f"{name}.yaml"
    if not candidate.exists():
        check_choice(f"defaults.{part}", name, sorted(p.stem for p in folder.glob("*.yaml")),
                     where=f"{exp_path}: {candidate} not found")
    return candidate


def _parse_overrides(overrides: list[str]) -> DictConfig:
    bad = [o for o in overrides if "=" not in o or o.startswith("=")]
    if bad:
        raise UserError(f"command line: override {bad[0]!r} is not KEY=VALUE, e.g. model.hidden_size=256")
    cfg = OmegaConf.create()
    for override in overrides:
        try:
            cfg.merge_with_dotlist([override])
        except (OmegaConfBaseException, yaml.YAMLError) as e:
            raise UserError(f"command line: cannot parse override {override!r} ({type(e).__name__}: "
                            f"{str(e).splitlines()[0]}); e.g. model.hidden_sizes=[8,16]") from None
    return cfg


def _last_set(layers: list[tuple[str, DictConfig]], section: str, key: str, default: Any = None) -> tuple[Any, str]:
    """The value of ``section.key`` in the last layer that sets it, and that layer's name."""
    found = (default, [src for src, _ in layers if src != "command line"][-1])
    for source, layer in layers:
        node = layer.get(section) if section else layer
        child = node._get_node(key) if isinstance(node, DictConfig) else None  # unresolved: ${...} may be broken
        if child is not None and child._value() is not None:
            found = (child._value(), source)
    return found


def _named(layers, section: str, lookup) -> type:
    name, source = _last_set(layers, section, "name")
    if name is None:
        raise UserError(f"{source}: {section}.name is not set: add 'defaults: {{{section}: ...}}' or "
                        f"'{section}.name=...'")
    try:
        return lookup(str(name))
    except UserError as e:
        raise UserError(f"{source}: {section}.name: {e}") from None


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


def _check_layer(layer: Any, schema: Any, source: str, prefix: str, names: dict) -> None:
    """Unknown keys (recursively), with the closest allowed key; a boolean key must get ``true``/``false``
    (OmegaConf would read ``2`` or ``"yes"`` as true)."""
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
            raise UserError(f"{source}: unknown key '{prefix}{key}'{did_you_mean(key, allowed)}{hint}; "
                            f"allowed keys in {where}: {', '.join(sorted(map(str, allowed)))}")
        child, target = layer._get_node(key), schema._get_node(key)
        if isinstance(child, DictConfig):
            _check_layer(child, target, source, f"{prefix}{key}.", names)
        elif isinstance(target, BooleanNode) and not OmegaConf.is_interpolation(layer, key) \
                and child._value() is not None and not isinstance(child._value(), bool):
            raise UserError(f"{source}: {prefix}{key}={child._value()!r} is not a boolean: write true or false")


def _resolve(cfg: DictConfig, layers) -> None:
    """Resolve every ``${...}`` interpolation now, so that a broken one is a one-line error naming its key."""
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as e:
        section, _, key = (getattr(e, "full_key", "") or "").rpartition(".")
        _, source = _last_set(layers, section, key)
        raise UserError(f"{source}: {omegaconf_message(e)}") from None


def _check_values(cfg: DictConfig, layers, sections: dict[str, type]) -> None:
    """Every field of every section against its type and declared range or choices, naming its layer."""
    for section, schema in sections.items():
        node = cfg[section] if section else cfg
        hints = typing.get_type_hints(schema)
        for field in dataclasses.fields(schema):
            if field.name in sections:  # a section of its own
                continue
            value = node[field.name]
            value = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
            problem = field_problem(f"{section}.{field.name}".lstrip("."), field, hints[field.name], value)
            if problem:
                _, source = _last_set(layers, section, field.name)
                raise UserError(f"{source}: {problem}")
    t = cfg.train
    if t.checkpoint_every % t.eval_every:
        raise UserError(f"train.checkpoint_every={t.checkpoint_every} must be a multiple of "
                        f"train.eval_every={t.eval_every} (each checkpoint is ranked by its validation metric)")
