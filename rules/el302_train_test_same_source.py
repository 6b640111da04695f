"""EL302 train-test-same-source."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ModuleFacts
from evallint.facts.data import literal_args_key
from evallint.facts.exprs import dotted, keyword, last_part, literal_value, positional, simple_assignment
from evallint.facts.flow import last_assignment_before
from evallint.rule import Change, Finding, Invalid, Rule

# torchvision datasets whose second parameter is `train` (default True).
_TRAIN_FLAG = {"MNIST", "FashionMNIST", "KMNIST", "EMNIST", "QMNIST", "CIFAR10", "CIFAR100", "USPS"}


class TrainTestSameSource(Rule):
    """
    ## What it does
    Flags evaluation data built from the training data: a torchvision dataset bound to
    a test/validation name with `train=True` (or with `train` left out, which defaults
    to True); a validation loader built on the same dataset object as the training
    loader; two datasets built from the same arguments for training and testing; an
    evaluation pass that iterates the training loader itself while its score is
    reported as test/validation; validation arrays sliced off training arrays that are
    then trained on whole. Datasets kept on attributes (`self.test_set = ...` in a
    `LightningDataModule.setup`) count too. It follows the data, not the names: a
    `train=True` copy cut down to a held-out part (`random_split` with the training
    copy's seed, `Subset`, an index sampler, a helper) before anything reads it, a
    loader that only lends one batch to a picture, and a `train_*` name rebound to
    a held-out split are all silent. One finding per construction.

    ## Why it is wrong
    The test score is a training score: the model is evaluated on samples it has
    learned, which hides overfitting and makes every comparison meaningless.

    ## Example
    ```python
    trainset = torchvision.datasets.CIFAR10(root, train=True, transform=t)
    testset = torchvision.datasets.CIFAR10(root, train=True, transform=t)
    ```

    ## Fix
    For a torchvision dataset with an unambiguous test/validation name, `train=False`
    (safe). Otherwise build the evaluation data from a held-out split
    (`random_split`, a separate file, or a split argument): explained only.

    ## References
    - rasbt/deeplearning-models#25
    - EdwardRaff/Inside-Deep-Learning#25
    """

    code = "EL302"
    name = "train-test-same-source"
    summary = "The test/validation data is built from the training data."
    severity = Severity.ERROR
    fixable = Applicability.SAFE
    tokens = (("torch", "Dataset", "DataLoader"),)
    replay_probe = "overlap"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        p = facts.patterns
        is_eval = lambda n: p.is_eval_data(last_part(n)) and not p.is_train_data(last_part(n))  # noqa: E731
        is_train = lambda n: p.is_train_data(last_part(n)) and not p.is_eval_data(last_part(n))  # noqa: E731
        flagged: set[int] = set()  # one finding per construction

        def once(finding):
            key = id(finding.node)
            if finding.node is not None and key not in flagged:
                flagged.add(key)
                return finding
            return None

        constructions = facts.constructions
        for c in constructions:
            if any(a.star for a in c.call.args):
                continue  # `**kwargs`: the arguments cannot be resolved
            if c.kind == "torchvision" and is_eval(c.name):
                if facts.narrowed_before_use(c.name, c.stmt):
                    overlap = facts.held_out_overlaps_training(c, constructions)
                    finding = Finding(c.call, f"{overlap}; the evaluation score will be a training score") \
                        if overlap else None
                    if finding is not None and once(finding):
                        yield finding
                    continue  # else another transform for the held-out part of a split: fine
                finding = self._torchvision(c)
                if finding and once(finding):
                    yield finding
            elif c.kind == "loader" and is_eval(c.name):
                data = c.dataset_expr()
                if isinstance(data, cst.Name) and is_train(data.value) and not _sampled(c):
                    source = _live_construction(facts, data.value, c.stmt)
                    if source is None or not facts.trained_on(data.value, source.stmt, exclude=c.stmt) \
                            or facts.only_peeked(c.name, c.stmt):
                        continue  # follow the data: a split the model never trains on, or a picture
                    finding = Finding(c.call, f"`{c.name}` iterates over the training data `{data.value}`; "
                                              "the evaluation score will be a training score")
                    if once(finding):
                        yield finding
        trains = [c for c in constructions if is_train(c.name)]
        for c in constructions:
            if not is_eval(c.name) or last_part(c.callee) in _TRAIN_FLAG or any(a.star for a in c.call.args):
                continue
            if id(c.call) in flagged or facts.narrowed_before_use(c.name, c.stmt) \
                    or (c.kind == "loader" and facts.only_peeked(c.name, c.stmt)):
                continue
            for t in trains:
                if t.kind != c.kind or t.stmt.order > c.stmt.order:
                    continue
                reason = self._same_source(facts, t, c)
                if reason:
                    finding = Finding(c.call, f"`{c.name}` is built from the training data: {reason}; "
                                              "the evaluation score will be a training score")
                    if once(finding):
                        yield finding
                    break
        # val_loader = train_loader
        for stmt in facts.statements:
            pair = simple_assignment(stmt.node)
            if pair and isinstance(pair[1], cst.Name) and is_eval(pair[0]) and is_train(pair[1].value) \
                    and _live_construction(facts, pair[1].value, stmt) is not None \
                    and not facts.only_peeked(pair[0], stmt):
                finding = Finding(pair[1], f"`{pair[0]}` is the training data `{pair[1].value}` itself")
                if once(finding):
                    yield finding
        for arg, name, trainer in facts.trained_and_evaluated():
            if is_eval(name):
                finding = Finding(arg.value, f"the evaluation data `{name}` is also passed to `{trainer}(...)`, "
                                             "which trains on it; the evaluation score will be a training score")
                if once(finding):
                    yield finding
        yield from self._evaluation_over_training_loader(facts, is_train)
        yield from self._slices_of_training_arrays(facts, is_eval, is_train)

    def _evaluation_over_training_loader(self, facts, is_train):
        """`for x, y in train_loader:` in an evaluation pass reported as test/validation."""
        seen = set()
        for ep in facts.eval_passes:
            loop = ep.loop
            if loop is None or id(loop) in seen or loop.iter_name is None or not is_train(loop.iter_name):
                continue
            seen.add(id(loop))
            source = last_assignment_before(facts.index, loop.iter_name, loop.stmt)
            if source is None or not facts.loops_train_on(loop.iter_name, source):
                continue  # the same loader object must be the one a training loop reads
            report = facts.reported_as_evaluation(loop)
            if report is None:
                continue
            yield Finding(loop.iter, f"This evaluation loop ({report}) iterates over the training loader "
                                     f"`{loop.iter_name}` itself; the reported score is a training score")

    def _slices_of_training_arrays(self, facts, is_eval, is_train):
        """`X_val = X_train[:1000]` while `X_train` is trained on whole."""
        for stmt in facts.statements:
            node = stmt.node
            if not isinstance(node, cst.Assign) or len(node.targets) != 1:
                continue
            target, value = node.targets[0].target, node.value
            pairs = [(target, value)]
            if isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List)) \
                    and len(target.elements) == len(value.elements):
                pairs = [(t.value, v.value) for t, v in zip(target.elements, value.elements)]
            for t, v in pairs:
                name = dotted(t)
                if name is None or not is_eval(name) or not isinstance(v, cst.Subscript):
                    continue
                source = dotted(v.value)
                if source is None or not is_train(source) \
                        or not any(isinstance(el.slice, cst.Slice) for el in v.slice):
                    continue
                if facts.array_trained_whole(source, stmt):
                    yield Finding(v, f"`{name}` is a slice of the training array `{source}`, which is then "
                                     "used whole for training; the validation score will be a training score")
                    break  # one finding per statement (`X_val, y_val = X_train[:n], y_train[:n]`)

    def _torchvision(self, c):
        short = last_part(c.callee)
        if short not in _TRAIN_FLAG:
            return None
        arg = keyword(c.call, "train") or positional(c.call, 1)
        if arg is None:
            fixed = c.call.with_changes(args=[*_with_trailing_comma(c.call.args),
                                              cst.Arg(cst.Name("False"), keyword=cst.Name("train"),
                                                      equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))])
            msg = f"`{c.name}` loads the training split: `{short}(...)` defaults to `train=True`"
        else:
            if literal_value(arg.value) is not True:
                return None
            fixed = c.call.with_changes(args=[a if a is not arg else a.with_changes(value=cst.Name("False"))
                                              for a in c.call.args])
            msg = f"`{c.name}` loads the training split: `train=True` on an evaluation dataset"
        return Finding(c.call, msg, self.fix(Applicability.SAFE, "Load the test split with `train=False`",
                                             Change(c.call, fixed)))

    def _same_source(self, facts, train, other) -> str | None:
        if train.kind == "loader":
            a, b = train.dataset_expr(), other.dataset_expr()
            if a is None or b is None or dotted(a) is None or dotted(a) != dotted(b):
                return None
            if _sampled(train) or _sampled(other):
                return None  # index samplers split one dataset correctly
            if _rebound_between(facts, dotted(a).split(".")[0], train.stmt, other.stmt):
                return None
            return f"both loaders wrap the same dataset `{dotted(a)}`"
        if train.callee != other.callee:
            return None
        code = facts.module.code_for_node
        if [code(a) for a in train.call.args] != [code(a) for a in other.call.args]:
            return None
        if literal_args_key(train.call) is None:
            names = {n for a in other.call.args for n in _names(a)}
            if any(_rebound_between(facts, n, train.stmt, other.stmt) for n in names):
                return None
        return f"`{last_part(other.callee)}` is built with the same arguments as `{train.name}`"

    VALID = [
        """
        import torchvision
        trainset = torchvision.datasets.CIFAR10(root="./data", train=True, download=True)
        testset = torchvision.datasets.CIFAR10(root="./data", train=False, download=True)
        """,
        """
        import torch
        from torch.utils.data import DataLoader, random_split
        train_ds, val_ds = random_split(full_ds, [0.8, 0.2])
        train_loader = DataLoader(train_ds, batch_size=32, shuffle=True)
        val_loader = DataLoader(val_ds, batch_size=32)
        """,
        # one dataset split by index samplers
        """
        import torch
        from torch.utils.data import DataLoader, SubsetRandomSampler
        train_loader = DataLoader(dataset, batch_size=32, sampler=SubsetRandomSampler(train_idx))
        val_loader = DataLoader(dataset, batch_size=32, sampler=SubsetRandomSampler(val_idx))
        """,
        # a custom dataset with different files
        """
        import torch
        from torch.utils.data import Dataset
        class CsvDataset(Dataset):
            def __init__(self, path):
                self.path = path
        train_ds = CsvDataset("train.csv")
        test_ds = CsvDataset("test.csv")
        """,
        # the split comes from keyword arguments we cannot see
        """
        from torchvision import datasets
        test_kwargs = dict(train=False, transform=tf)
        test_set = datasets.MNIST("data", **test_kwargs)
        """,
        # folders per split
        """
        from torchvision import datasets
        train_set = datasets.ImageFolder("data/train", transform=tf)
        val_set = datasets.ImageFolder("data/val", transform=tf)
        """,
        # the same variable names, rebound to the test arrays in between
        """
        import torch
        from torch.utils.data import TensorDataset
        train_ds = TensorDataset(X, y)
        X, y = load("test")
        test_ds = TensorDataset(X, y)
        """,
        # an evaluation copy of the training set, only to give it another transform, cut down
        # to the held-out part with the training copy's lengths and seed
        """
        import torch
        import torchvision
        from torch.utils.data import DataLoader, random_split
        train_full = torchvision.datasets.CIFAR10("data", train=True, transform=train_tf)
        val_full = torchvision.datasets.CIFAR10("data", train=True, transform=eval_tf)
        torch.manual_seed(0)
        train_set, _ = random_split(train_full, [45000, 5000])
        torch.manual_seed(0)
        _, val_set = random_split(val_full, [45000, 5000])
        val_loader = DataLoader(val_set, batch_size=256)
        """,
        # the same through a helper that returns the held-out half
        """
        import torchvision
        valid_dataset = torchvision.datasets.MNIST("data", train=True, transform=plain_tf)
        valid_subset = held_out_part(valid_dataset, seed=42)
        """,
        # disjoint index samplers over two copies of the training set
        """
        import torch
        from torchvision import datasets
        from torch.utils.data import DataLoader, SubsetRandomSampler
        train_dataset = datasets.CIFAR10("data", train=True, transform=train_tf)
        valid_dataset = datasets.CIFAR10("data", train=True, transform=valid_tf)
        train_idx, valid_idx = indices[5000:], indices[:5000]
        train_loader = DataLoader(train_dataset, batch_size=64, sampler=SubsetRandomSampler(train_idx))
        valid_loader = DataLoader(valid_dataset, batch_size=64, sampler=SubsetRandomSampler(valid_idx))
        """,
        # a loader over training data that only lends one batch to a picture
        """
        import torch
        import torchvision
        from torch.utils.data import DataLoader
        trainset = torchvision.datasets.MNIST("data", train=True, transform=tf)
        train_loader = DataLoader(trainset, batch_size=64, shuffle=True)
        test_preview = DataLoader(trainset, batch_size=8, shuffle=True)
        images, labels = next(iter(test_preview))
        show(torchvision.utils.make_grid(images))
        """,
        # follow the data: `train_ds` was rebound to the held-out split
        """
        import torch
        from torch.utils.data import DataLoader, TensorDataset, random_split
        train_ds = TensorDataset(X, y)
        fit_ds, train_ds = random_split(train_ds, [800, 200])
        train_loader = DataLoader(fit_ds, batch_size=32, shuffle=True)
        val_loader = DataLoader(train_ds, batch_size=64)
        """,
        # the validation slice is cut off the training arrays before training
        """
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        X_val, y_val = X_train[:1000], y_train[:1000]
        X_train, y_train = X_train[1000:], y_train[1000:]
        train_loader = DataLoader(TensorDataset(X_train, y_train), batch_size=32, shuffle=True)
        """,
        # training on the training set, evaluating on the test set
        """
        import torch
        def train(model, data):
            for x, y in data:
                criterion(model(x), y).backward()
                optimizer.step()

        def evaluate(model, data):
            with torch.no_grad():
                return sum((model(x).argmax(1) == y).sum().item() for x, y in data)

        train(model, train_data)
        print(evaluate(model, test_data), evaluate(model, train_data))
        """,
        # a training-accuracy pass over the training loader, reported as such
        """
        import torch
        from torch.utils.data import DataLoader
        train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
        for x, y in train_loader:
            criterion(model(x), y).backward()
            optimizer.step()
        with torch.no_grad():
            correct = 0
            for x, y in train_loader:
                correct += (model(x).argmax(1) == y).sum().item()
        print("train accuracy", correct)
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torchvision
            testset = torchvision.datasets.CIFAR10(root="./data", train=True, download=True, transform=transform)
            """,
            line=2, column=11,
            fixed="""
            import torchvision
            testset = torchvision.datasets.CIFAR10(root="./data", train=False, download=True, transform=transform)
            """,
        ),
        Invalid(
            """
            from torchvision import datasets
            test_data = datasets.MNIST("data", download=True, transform=ToTensor())
            """,
            line=2, column=13,
            fixed="""
            from torchvision import datasets
            test_data = datasets.MNIST("data", download=True, transform=ToTensor(), train=False)
            """,
        ),
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader, TensorDataset
            dataset = TensorDataset(X, y)
            train_loader = DataLoader(dataset, batch_size=64, shuffle=True)
            val_loader = DataLoader(dataset, batch_size=64)
            """,
            line=5, column=14,
        ),
        Invalid(
            """
            import torch
            from torch.utils.data import Dataset
            class HousingDataset(Dataset):
                def __init__(self, csv_path):
                    self.frame = pd.read_csv(csv_path)
            train_dataset = HousingDataset("data/housing.csv")
            test_dataset = HousingDataset("data/housing.csv")
            """,
            line=7, column=16,
        ),
        # one image folder for both splits
        Invalid(
            """
            from torchvision import datasets
            train_set = datasets.ImageFolder("data/train", transform=tf)
            val_set = datasets.ImageFolder("data/train", transform=tf)
            """,
            line=3, column=11,
        ),
        # the validation loader iterates over the training set
        Invalid(
            """
            import torchvision
            from torch.utils.data import DataLoader
            train_set = torchvision.datasets.CIFAR10("data", train=True, download=True)
            train_loader = DataLoader(train_set, batch_size=128, shuffle=True)
            val_loader = DataLoader(train_set, batch_size=256)
            """,
            line=5, column=14,
        ),
        # the evaluation copy keeps the very part the training copy keeps (same lengths, same seed)
        Invalid(
            """
            import torch
            import torchvision
            from torch.utils.data import random_split
            train_full = torchvision.datasets.CIFAR10("data", train=True, transform=train_tf)
            val_full = torchvision.datasets.CIFAR10("data", train=True, transform=eval_tf)
            torch.manual_seed(0)
            train_set, _ = random_split(train_full, [45000, 5000])
            torch.manual_seed(0)
            val_set, _ = random_split(val_full, [45000, 5000])
            """,
            line=5, column=12, message_contains="same part",
        ),
        # the model is trained on the test set it is then scored on
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader
            def train(model, data):
                for x, y in DataLoader(data, batch_size=64, shuffle=True):
                    criterion(model(x), y).backward()
                    optimizer.step()

            def evaluate(model, data):
                with torch.no_grad():
                    return sum((model(x).argmax(1) == y).sum().item() for x, y in DataLoader(data))

            train(model, test_data)
            print(evaluate(model, test_data))
            """,
            line=12, column=14,
        ),
        # a LightningDataModule keeps its datasets on attributes
        Invalid(
            """
            import torchvision
            import lightning as L
            class MNISTData(L.LightningDataModule):
                def setup(self, stage=None):
                    self.train_set = torchvision.datasets.MNIST(self.root, train=True, transform=self.tf)
                    self.test_set = torchvision.datasets.MNIST(self.root, train=True, transform=self.tf)
            """,
            line=6, column=25,
            fixed="""
            import torchvision
            import lightning as L
            class MNISTData(L.LightningDataModule):
                def setup(self, stage=None):
                    self.train_set = torchvision.datasets.MNIST(self.root, train=True, transform=self.tf)
                    self.test_set = torchvision.datasets.MNIST(self.root, train=False, transform=self.tf)
            """,
        ),
        # the test pass iterates the training loader itself
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
            for x, y in train_loader:
                criterion(model(x), y).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                correct = 0
                for x, y in train_loader:
                    correct += (model(x).argmax(1) == y).sum().item()
            print("Test accuracy:", correct / len(train_loader.dataset))
            """,
            line=10, column=17,
        ),
        # validation arrays sliced off training arrays that are then trained on whole
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader, TensorDataset
            X_val, y_val = X_train[:1000], y_train[:1000]
            train_loader = DataLoader(TensorDataset(X_train, y_train), batch_size=32, shuffle=True)
            for x, y in train_loader:
                criterion(model(x), y).backward()
                optimizer.step()
            """,
            line=3, column=16,
        ),
        # a one-batch loader over training data that IS scored: still a training score, once
        Invalid(
            """
            import torch
            import torchvision
            from torch.utils.data import DataLoader
            trainset = torchvision.datasets.MNIST("data", train=True, transform=tf)
            train_loader = DataLoader(trainset, batch_size=64, shuffle=True)
            test_loader = DataLoader(trainset, batch_size=64)
            images, labels = next(iter(test_loader))
            print((model(images).argmax(1) == labels).float().mean())
            """,
            line=6, column=15,
        ),
    ]


def _sampled(loader) -> bool:
    return any(keyword(loader.call, k) for k in ("sampler", "batch_sampler"))


def _with_trailing_comma(args):
    args = list(args)
    if args and args[-1].comma is cst.MaybeSentinel.DEFAULT:
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return args


def _names(node) -> set[str]:
    from evallint.facts.walk import names_in
    return names_in(node)


def _live_construction(facts, name, at):
    """The dataset/loader construction `name` still holds at `at` (None when it was
    rebound since, e.g. by `train_ds, val_ds = random_split(train_ds, ...)`)."""
    c = facts.construction(name, at)
    if c is None:
        return None
    last = last_assignment_before(facts.index, name, at)
    return c if last is None or last is c.stmt else None


def _rebound_between(facts, name, first, second) -> bool:
    return any(name in s.stores for s in facts.statements if first.order < s.order < second.order)
