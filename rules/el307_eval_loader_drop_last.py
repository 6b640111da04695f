"""EL307 eval-loader-drop-last."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ModuleFacts
from evallint.rule import Change, Finding, Invalid, Rule


class EvalLoaderDropLast(Rule):
    """
    ## What it does
    Flags `drop_last=True` on a DataLoader of evaluation data: bound to a
    validation/test name, built on a validation/test dataset (or one with
    `train=False`), or built in a branch on an evaluation split
    (`if flag == "test": drop_last = True`). Training loaders are left alone, and so
    are loaders with `batch_size=1`.

    ## Why it is wrong
    The last, short batch is skipped: up to `batch_size - 1` samples are never scored.
    The metric is computed on a subset that depends on the batch size, and results
    are not comparable with other work.

    ## Example
    ```python
    test_loader = DataLoader(test_set, batch_size=64, shuffle=False, drop_last=True)
    ```

    ## Fix
    `drop_last=False` on evaluation loaders (unsafe: code that assumes full batches,
    such as fixed-size reshapes, must then handle a short last batch).

    ## References
    - thuml/Autoformer#104
    """

    code = "EL307"
    name = "eval-loader-drop-last"
    summary = "`drop_last=True` on an evaluation loader skips samples."
    severity = Severity.WARNING
    fixable = Applicability.UNSAFE
    tokens = (("drop_last",), ("DataLoader",))

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for d in facts.eval_drop_last:
            fix = self.fix(Applicability.UNSAFE, "Use `drop_last=False` for evaluation data",
                           Change(d.value, cst.Name("False")))
            yield Finding(d.value, f"`drop_last=True` on evaluation data ({d.why}): the last batch's samples are "
                                   "never scored", fix)

    VALID = [
        # training loaders may drop the short batch
        """
        from torch.utils.data import DataLoader
        train_loader = DataLoader(train_set, batch_size=64, shuffle=True, drop_last=True)
        test_loader = DataLoader(test_set, batch_size=64, shuffle=False)
        """,
        # one sample per batch drops nothing
        """
        from torch.utils.data import DataLoader
        test_loader = DataLoader(test_set, batch_size=1, drop_last=True)
        """,
        # the flag follows the split
        """
        from torch.utils.data import DataLoader
        def make_loader(ds, split):
            return DataLoader(ds, batch_size=32, drop_last=(split == "train"))
        """,
    ]
    INVALID = [
        Invalid(
            """
            from torch.utils.data import DataLoader
            test_loader = DataLoader(test_set, batch_size=64, shuffle=False, drop_last=True)
            """,
            line=2, column=76,
            fixed="""
            from torch.utils.data import DataLoader
            test_loader = DataLoader(test_set, batch_size=64, shuffle=False, drop_last=False)
            """,
        ),
        # Autoformer's data factory: the test branch drops the last batch
        Invalid(
            """
            from torch.utils.data import DataLoader
            def data_provider(args, flag):
                if flag == "test":
                    shuffle_flag = False
                    drop_last = True
                else:
                    shuffle_flag = True
                    drop_last = True
                data_set = Dataset_Custom(args.root_path, flag=flag)
                return DataLoader(data_set, batch_size=args.batch_size, shuffle=shuffle_flag, drop_last=drop_last)
            """,
            line=5, column=21,
            fixed="""
            from torch.utils.data import DataLoader
            def data_provider(args, flag):
                if flag == "test":
                    shuffle_flag = False
                    drop_last = False
                else:
                    shuffle_flag = True
                    drop_last = True
                data_set = Dataset_Custom(args.root_path, flag=flag)
                return DataLoader(data_set, batch_size=args.batch_size, shuffle=shuffle_flag, drop_last=drop_last)
            """,
        ),
    ]
