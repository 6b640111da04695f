"""EL308 distributed-eval-padding."""
from __future__ import annotations

from evallint.diagnostic import Severity
from evallint.facts import ModuleFacts
from evallint.rule import Finding, Invalid, Rule


class DistributedEvalPadding(Rule):
    """
    ## What it does
    Flags a `DistributedSampler` on evaluation data (a validation/test dataset, or
    the sampler of an evaluation loader) when the file shows no handling of the
    padding: no `drop_last=True` on the sampler, no `gather_for_metrics`, and no
    all-gather followed by truncation to the data set's length.

    ## Why it is wrong
    To give every process the same number of samples, `DistributedSampler` pads the
    data with duplicates of the first samples. Unless the data set's size divides
    evenly by the number of processes, some samples are scored twice and the metric is
    slightly off (and differs with the number of GPUs).

    ## Example
    ```python
    val_sampler = DistributedSampler(val_set, shuffle=False)
    val_loader = DataLoader(val_set, batch_size=256, sampler=val_sampler)
    ```

    ## Fix
    Gather the predictions from all processes and truncate them to `len(val_set)`,
    use a sampler that does not pad for evaluation, or score on a single process.
    No automatic fix.

    ## References
    - pytorch/examples#1063
    """

    code = "EL308"
    name = "distributed-eval-padding"
    summary = "`DistributedSampler` on evaluation data pads it with duplicate samples."
    severity = Severity.INFO
    fixable = None
    tokens = (("DistributedSampler",),)

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for s in facts.eval_distributed_samplers:
            yield Finding(s.call, f"`DistributedSampler` on evaluation data ({s.why}) pads it with duplicates "
                                  "when its size does not divide by the number of processes")

    VALID = [
        # training data only
        """
        from torch.utils.data import DataLoader, DistributedSampler
        train_loader = DataLoader(train_set, batch_size=64, sampler=DistributedSampler(train_set))
        """,
        # duplicates dropped by the sampler
        """
        from torch.utils.data import DistributedSampler
        val_sampler = DistributedSampler(val_set, shuffle=False, drop_last=True)
        """,
        # gathered and truncated to the data set's length
        """
        import torch.distributed as dist
        from torch.utils.data import DistributedSampler
        val_sampler = DistributedSampler(val_set, shuffle=False)
        gathered = [None] * world_size
        dist.all_gather_object(gathered, preds)
        preds = sum(gathered, [])[: len(val_set)]
        """,
    ]
    INVALID = [
        Invalid(
            """
            from torch.utils.data import DataLoader
            from torch.utils.data.distributed import DistributedSampler
            val_sampler = DistributedSampler(val_set, shuffle=False)
            val_loader = DataLoader(val_set, batch_size=256, sampler=val_sampler)
            """,
            line=3, column=15,
        ),
        Invalid(
            """
            import torch
            test_loader = torch.utils.data.DataLoader(
                test_dataset, batch_size=128, sampler=torch.utils.data.distributed.DistributedSampler(test_dataset))
            """,
            line=3, column=43,
        ),
    ]
