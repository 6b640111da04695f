"""Transforms and fitted preprocessing: what each is fitted on, which dataset each
transform is attached to, whether it normalises (and with which statistics), whether
it is random.

Image pipelines: a `transform=` argument of a dataset construction (torchvision,
in-file Dataset classes, any call that takes `transform=`), resolved through one
assignment to a `Compose([...])` (torchvision, v2, albumentations) or a single
transform. Tabular pipelines: `fit`/`fit_transform`/`partial_fit`/`fit_resample` of
scalers, PCA, imputers, feature selectors and resamplers, pandas/numpy column
statistics, and `train_test_split`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import libcst as cst

from . import flow
from .exprs import dotted, keyword, last_part, literal_value, method_call, positional
from .patterns import snake
from .walk import walk

if TYPE_CHECKING:  # pragma: no cover
    from . import ModuleFacts
    from .index import Stmt

_TRANSFORM_ROOTS = ("torchvision.transforms", "albumentations", "kornia.augmentation", "monai.transforms")
_COMPOSE = {"Compose", "Sequential", "OneOf", "SomeOf"}
# torchvision transforms that draw random parameters.
_RANDOM_TV = {"ColorJitter", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix", "ElasticTransform",
              "RandomApply", "RandomChoice", "RandomOrder", "Cutout", "MixUp", "CutMix", "ScaleJitter",
              "RandomShortestSize", "RandomIoUCrop", "RandomZoomOut", "RandomPhotometricDistort", "LinearTransformation_"}
# albumentations transforms that are deterministic (everything else is applied with a probability).
_DETERMINISTIC_ALB = {"Normalize", "Resize", "CenterCrop", "Crop", "PadIfNeeded", "LongestMaxSize", "SmallestMaxSize",
                      "ToFloat", "FromFloat", "ToTensorV2", "ToGray", "Compose", "Lambda", "NoOp", "ToRGB"}
# torchvision transforms that are deterministic.
_DETERMINISTIC_TV = {"ToTensor", "Normalize", "Resize", "CenterCrop", "Pad", "Grayscale", "ToPILImage", "Compose",
                     "ConvertImageDtype", "PILToTensor", "FiveCrop", "TenCrop", "Lambda", "ToImage", "ToDtype",
                     "ToPureTensor", "Identity", "Sequential", "GaussianBlur", "Resized", "SanitizeBoundingBoxes"}

# Preprocessors whose statistics come from the data they are fitted on.
FITTED = {"StandardScaler", "MinMaxScaler", "RobustScaler", "MaxAbsScaler", "QuantileTransformer",
          "PowerTransformer", "Normalizer_", "PCA", "IncrementalPCA", "KernelPCA", "TruncatedSVD", "FastICA",
          "SimpleImputer", "KNNImputer", "IterativeImputer", "SelectKBest", "SelectPercentile", "VarianceThreshold",
          "RFE", "RFECV", "SelectFromModel", "SMOTE", "ADASYN", "BorderlineSMOTE", "RandomOverSampler",
          "RandomUnderSampler", "SMOTEENN", "SMOTETomek", "TfidfVectorizer", "KBinsDiscretizer", "LDA_"}
_FIT_METHODS = {"fit", "fit_transform", "partial_fit", "fit_resample"}
_SPLITS = {"sklearn.model_selection.train_test_split", "train_test_split"}
_STATS = {"mean", "std", "var", "min", "max", "median"}
_PREDICT = {"predict", "predict_proba", "score", "evaluate", "decision_function"}
_X_LIKE = re.compile(r"(?:^|_)(?:x|df|features|feats|inputs|frame|data|x\d)(?:_|$)")


@dataclass(eq=False)
class TransformInfo:
    expr: cst.BaseExpression          # as written at the attachment
    steps: list[str]                  # short names of the resolved steps
    known: bool                       # every step is a library transform we know
    random: list[str]                 # steps that draw random parameters
    normalize: list[Optional[str]]    # per Normalize step: its arguments' text when literal, else None


@dataclass(eq=False)
class Attachment:
    call: cst.Call                    # the dataset construction
    role: Optional[str]               # "train" | "eval" | None
    transform: TransformInfo
    stmt: "Stmt"


@dataclass(eq=False)
class Fit:
    call: cst.Call
    kind: str                         # the preprocessor's class name
    data: cst.BaseExpression          # what it is fitted on
    data_names: set
    results: set = field(default_factory=set)  # names the fitted output is bound to
    stmt: Optional["Stmt"] = None


def _code(node) -> str:
    return cst.Module([]).code_for_node(node)


def _short(facts, call: cst.Call) -> tuple[str, str]:
    name = facts.qualify(call.func) or dotted(call.func) or ""
    return name, last_part(name)


def _resolve(facts, expr, at, depth=0):
    """Follow a name to the value it was last assigned (up to three hops): (value, stmt)."""
    if isinstance(expr, cst.Name) and depth < 3:
        s = flow.last_assignment_before(facts.index, expr.value, at)
        value = _value_of(s.node, expr.value) if s is not None else None
        if value is not None:
            return _resolve(facts, value, s, depth + 1)
    return expr, at


def _value_of(node, name):
    from .exprs import value_assigned
    return value_assigned(node, name)


def describe(facts: "ModuleFacts", expr: cst.BaseExpression, at: "Stmt", depth: int = 0) -> Optional[TransformInfo]:
    """The transform behind an expression, or None when it is not a transform call."""
    value, at = _resolve(facts, expr, at)
    if not isinstance(value, cst.Call) or depth > 3:
        return None
    name, short = _short(facts, value)
    steps, known, random, normalize = [], True, [], []
    items: list = []
    if short in _COMPOSE and value.args and isinstance(value.args[0].value, (cst.List, cst.Tuple)):
        items = [el.value for el in value.args[0].value.elements]
    elif short in _COMPOSE:
        items = [a.value for a in value.args if a.keyword is None]
    else:
        items = [value]
    for item in items:
        item, item_at = _resolve(facts, item, at)
        if isinstance(item, cst.StarredElement) or not isinstance(item, cst.Call):
            known = False
            continue
        iname, ishort = _short(facts, item)
        steps.append(ishort)
        library = iname.startswith(_TRANSFORM_ROOTS)
        if not library:
            known = False
            continue
        if ishort in _COMPOSE:
            inner = describe(facts, item, item_at, depth + 1) if item is not value else None
            if inner is None or not inner.known:
                known = False
            else:
                random += inner.random
                normalize += inner.normalize
            continue
        if ishort == "Normalize":
            normalize.append(_literal_args(item))
        if _is_random(iname, ishort, item):
            random.append(ishort)
    if not items:
        return None
    if short not in _COMPOSE and not name.startswith(_TRANSFORM_ROOTS):
        return None
    return TransformInfo(expr, steps, known, random, normalize)


def _literal_args(call: cst.Call) -> Optional[str]:
    """The arguments of a call as a canonical text when all are literals, else None."""
    import ast
    out = []
    for a in call.args:
        try:
            value = ast.literal_eval(_code(a.value))
        except (ValueError, SyntaxError):
            return None
        if isinstance(value, (list, tuple)):
            value = tuple(float(v) if isinstance(v, (int, float)) else v for v in value)
        out.append((a.keyword.value if a.keyword else None, value))
    return repr(out)


def _is_random(name: str, short: str, call: cst.Call) -> bool:
    if name.startswith("albumentations"):
        if short in _DETERMINISTIC_ALB:
            return False
        p = keyword(call, "p")
        return not (p is not None and literal_value(p.value) == 0)
    if name.startswith("kornia.augmentation"):
        return short.startswith("Random") or short.startswith("Color")
    if short.startswith("Random") or short in _RANDOM_TV:
        return True
    return False


_ROLE_WORDS = {"train": "train", "training": "train", "trn": "train", "val": "eval", "valid": "eval",
               "validation": "eval", "test": "eval", "testing": "eval", "eval": "eval", "dev": "eval"}


def _role_of_text(text: str) -> Optional[str]:
    roles = {_ROLE_WORDS[w] for w in re.split(r"[^a-z]+", snake(text)) if w in _ROLE_WORDS}
    return roles.pop() if len(roles) == 1 else None


def _role(facts, call: cst.Call, stmt: "Stmt") -> Optional[str]:
    p = facts.patterns
    tr = keyword(call, "train")
    if tr is not None and literal_value(tr.value) in (True, False):
        return "train" if literal_value(tr.value) else "eval"
    split = keyword(call, "split")
    if split is not None and isinstance(literal_value(split.value), str):
        return _role_of_text(literal_value(split.value))
    node = stmt.node
    if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
        name = node.targets[0].target.value
        is_eval, is_train = p.is_eval_data(name), p.is_train_data(name)
        if is_eval != is_train:
            return "eval" if is_eval else "train"
    first = positional(call, 0) or keyword(call, "root")
    if first is not None:
        text = _code(first.value)
        if isinstance(first.value, (cst.SimpleString, cst.Name, cst.Call, cst.FormattedString, cst.BinaryOperation)):
            return _role_of_text(text)
    return None


def attachments(facts: "ModuleFacts") -> list[Attachment]:
    out = []
    for call, stmt in facts.index.calls:
        arg = keyword(call, "transform")
        if arg is None:
            continue
        info = describe(facts, arg.value, stmt)
        if info is None:
            continue
        out.append(Attachment(call, _role(facts, call, stmt), info, stmt))
    return out


def named_eval_transforms(facts: "ModuleFacts") -> list[TransformInfo]:
    """`test_transform = Compose([...])` (or a `"val":` entry of a transforms dict):
    transforms that their own name gives to evaluation data."""
    p = facts.patterns
    out = []
    for stmt in facts.statements:
        node = stmt.node
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name) \
                and isinstance(node.value, cst.Call):
            name = node.targets[0].target.value
            if _role_of_text(snake(name)) == "eval" and not p.is_train_data(name):
                info = describe(facts, node.value, stmt)
                if info is not None:
                    out.append(info)
        if isinstance(node, cst.Assign) and isinstance(node.value, cst.Dict):
            for el in node.value.elements:
                if isinstance(el, cst.DictElement) and isinstance(el.key, cst.SimpleString) \
                        and isinstance(el.key.evaluated_value, str) and _role_of_text(el.key.evaluated_value) == "eval" \
                        and isinstance(el.value, cst.Call):
                    info = describe(facts, el.value, stmt)
                    if info is not None:
                        out.append(info)
    return out


def _preprocessor(facts, obj, at) -> Optional[str]:
    value, _ = _resolve(facts, obj, at)
    if isinstance(value, cst.Call):
        short = last_part(facts.qualify(value.func) or dotted(value.func) or "")
        if short in FITTED:
            return short
    return None


def _base_names(expr) -> set:
    return {n.value for n in walk(expr) if isinstance(n, cst.Name)} - {"np", "pd", "numpy", "pandas"}


def fits(facts: "ModuleFacts") -> list[Fit]:
    out = []
    for call, stmt in facts.index.calls:
        mc = method_call(call)
        if mc is None or mc[1] not in _FIT_METHODS or not call.args or call.args[0].keyword is not None:
            continue
        kind = _preprocessor(facts, mc[0], stmt)
        if kind is None:
            continue
        data = call.args[0].value
        results = set()
        node = stmt.node
        if isinstance(node, cst.Assign) and node.value is call:
            for t in node.targets:
                results |= _base_names(t.target) if isinstance(t.target, (cst.Name, cst.Tuple, cst.List)) else set()
        out.append(Fit(call, kind, data, _base_names(data), results, stmt))
    out.extend(_column_statistics(facts))
    return out


def _column_statistics(facts) -> list[Fit]:
    """`(X - X.mean()) / X.std()`: statistics over the rows of X (no axis, or axis 0)."""
    out = []
    for binop, stmt in facts.index.binops:
        if not isinstance(binop.operator, cst.Subtract):
            continue
        stat = binop.right
        mc = method_call(stat)
        if mc is None or mc[1] not in _STATS:
            continue
        if not _over_rows(stat):
            continue
        base = dotted(_strip_subscript(mc[0]))
        left = dotted(_strip_subscript(binop.left))
        if base is None or base != left:
            continue
        results = set()
        node = stmt.node
        if isinstance(node, cst.Assign):
            for t in node.targets:
                target = t.target
                d = dotted(_strip_subscript(target))
                if d is not None:
                    results.add(d.split(".")[0])
        out.append(Fit(stat, "column statistics", binop.left, {base.split(".")[0]}, results, stmt))
    return out


def _strip_subscript(expr):
    while isinstance(expr, cst.Subscript):
        expr = expr.value
    return expr


def _over_rows(call: cst.Call) -> bool:
    if not call.args:
        return True
    for a in call.args:
        if a.keyword is not None and a.keyword.value not in ("axis", "dim"):
            continue
        v = literal_value(a.value)
        return v == 0
    return True


@dataclass(eq=False)
class Split:
    call: cst.Call
    stmt: "Stmt"
    names: set


def splits(facts: "ModuleFacts") -> list[Split]:
    out = []
    for call, stmt in facts.index.calls:
        if (facts.qualify(call.func) or "") in _SPLITS or last_part(dotted(call.func)) == "train_test_split":
            names = set()
            for a in call.args:
                if a.keyword is None:
                    names |= _base_names(a.value)
            out.append(Split(call, stmt, names))
    return out


def leaky_fits(facts: "ModuleFacts") -> list[tuple[Fit, str]]:
    """Fits on evaluation data, or on all the data before it is split."""
    p = facts.patterns
    out = []
    all_splits = splits(facts)
    for fit in fits(facts):
        names = fit.data_names
        evals = {n for n in names if p.is_eval_data(n) and not p.is_train_data(n)}
        trains = {n for n in names if p.is_train_data(n) and not p.is_eval_data(n)}
        if fit.kind == "column statistics" and not any(_X_LIKE.search(snake(n)) for n in names):
            continue
        if evals and trains:
            out.append((fit, "all"))
            continue
        if evals and not trains:
            out.append((fit, "eval"))
            continue
        if trains:
            continue
        for sp in all_splits:
            if sp.stmt.order > fit.stmt.order and sp.stmt.function is fit.stmt.function \
                    and (sp.names & (names | fit.results)):
                out.append((fit, "before-split"))
                break
    return out


def untransformed_predictions(facts: "ModuleFacts") -> list[tuple[cst.Call, str, Fit]]:
    """`model.predict(X_test)` where X_test never went through the preprocessor that was
    fitted (with fit_transform) on the training data."""
    p = facts.patterns
    train_fits = [f for f in fits(facts) if f.kind != "column statistics" and f.kind not in
                  ("SMOTE", "ADASYN", "BorderlineSMOTE", "RandomOverSampler", "RandomUnderSampler", "SMOTEENN",
                   "SMOTETomek") and last_part(dotted(f.call.func)) == "fit_transform"
                  and any(p.is_train_data(n) and not p.is_eval_data(n) for n in f.data_names)]
    if not train_fits or _uses_pipeline(facts):
        return []
    transformed: set = set()
    for call, stmt in facts.index.calls:
        mc = method_call(call)
        if mc is not None and mc[1] in ("transform", "fit_transform", "inverse_transform"):
            for a in call.args:
                transformed |= _base_names(a.value)
            transformed |= stmt.stores
    out = []
    for call, stmt in facts.index.calls:
        mc = method_call(call)
        if mc is None or mc[1] not in _PREDICT or not call.args:
            continue
        arg = call.args[0].value
        if not isinstance(arg, cst.Name):
            continue
        n = arg.value
        if not (p.is_eval_data(n) and not p.is_train_data(n) and _X_LIKE.search(snake(n))) or n in transformed:
            continue
        fit = next((f for f in train_fits if f.stmt.order < stmt.order), None)
        if fit is not None:
            out.append((call, n, fit))
    return out


def _uses_pipeline(facts) -> bool:
    return any(last_part(v) in ("Pipeline", "make_pipeline", "ColumnTransformer", "make_column_transformer")
               for v in facts.aliases.values())
