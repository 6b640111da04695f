"""EL306 augmentation-in-eval-transform."""
from __future__ import annotations

from evallint.diagnostic import Severity
from evallint.facts import ModuleFacts
from evallint.facts.patterns import snake
from evallint.rule import Finding, Invalid, Rule


class AugmentationInEvalTransform(Rule):
    """
    ## What it does
    Flags a random transform (`Random*`, `ColorJitter`, `AutoAugment`, `RandAugment`,
    `TrivialAugmentWide`, `AugMix`, albumentations augmentations) in the `transform=`
    of an evaluation dataset: one bound to a test/validation name, built with
    `train=False` or `split="test"`, or read from a `val`/`test` folder. The transform
    is followed through its assignment to the `Compose([...])` it names. A transform
    whose own name says it is for evaluation (`test_transform = Compose([...])`, the
    `"val"` entry of a transforms dict) counts too. Transforms named for test-time
    augmentation (`tta`) are left alone.

    ## Why it is wrong
    Random crops, flips and colour changes belong to training. In evaluation they make
    the score random (it changes from run to run) and usually lower, and the images the
    model is scored on are not the ones it will see.

    ## Example
    ```python
    augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
    train_set = CIFAR10(root, train=True, transform=augment)
    test_set = CIFAR10(root, train=False, transform=augment)
    ```

    ## Fix
    Give the evaluation data a deterministic transform (`Resize`/`CenterCrop`,
    `ToTensor`, the same `Normalize`). No automatic fix.

    ## References
    - torchvision reference scripts: separate train and eval presets.
    """

    code = "EL306"
    name = "augmentation-in-eval-transform"
    summary = "A random augmentation is applied to the evaluation data."
    severity = Severity.WARNING
    fixable = None
    tokens = (("Random", "ColorJitter", "AutoAugment", "RandAugment", "TrivialAugment", "AugMix", "albumentations",
               "kornia", "Flip", "Rotate", "Affine", "Noise", "Blur", "Dropout", "Jitter", "Shift", "Elastic",
               "Distortion"), ("transform",))

    def check(self, facts: ModuleFacts):
        reported = set()
        candidates = [a.transform for a in facts.transform_attachments if a.role == "eval"]
        for info in facts.named_eval_transforms:
            candidates.append(info)
        for info in candidates:
            if not info.random or id(info.expr) in reported:
                continue
            text = facts_text(info.expr)
            if "tta" in snake(text).split("_"):
                continue
            reported.add(id(info.expr))
            steps = ", ".join(f"`{s}`" for s in dict.fromkeys(info.random))
            yield Finding(info.expr, f"the evaluation data's transform is random ({steps}): the score "
                                     "changes from run to run; use a deterministic evaluation transform")

    VALID = [
        # augmentation only in the training transform
        """
        import torchvision.transforms as T
        from torchvision.datasets import CIFAR10
        train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
        test_tf = T.Compose([T.ToTensor()])
        train_set = CIFAR10("data", train=True, transform=train_tf)
        test_set = CIFAR10("data", train=False, transform=test_tf)
        """,
        # deterministic resizing and cropping in evaluation
        """
        from torchvision import datasets, transforms
        val_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
        val_set = datasets.ImageFolder("data/val", transform=val_tf)
        """,
        # explicit test-time augmentation
        """
        import torchvision.transforms as T
        from torchvision.datasets import CIFAR10
        tta_transform = T.Compose([T.RandomHorizontalFlip(), T.ToTensor()])
        test_set = CIFAR10("data", train=False, transform=tta_transform)
        """,
    ]
    INVALID = [
        # the evaluation entry of a transforms dict
        Invalid(
            """
            from torchvision import transforms
            data_transforms = {
                "train": transforms.Compose([transforms.RandomResizedCrop(224), transforms.ToTensor()]),
                "val": transforms.Compose([transforms.RandomResizedCrop(224), transforms.ToTensor()]),
            }
            """,
            line=4, column=12,
        ),
        Invalid(
            """
            import torchvision.transforms as T
            from torchvision.datasets import CIFAR10
            augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
            train_set = CIFAR10("data", train=True, download=True, transform=augment)
            test_set = CIFAR10("data", train=False, download=True, transform=augment)
            """,
            line=5, column=66,
        ),
        Invalid(
            """
            import albumentations as A
            val_ds = LeafDataset(val_df, transform=A.Compose([A.HorizontalFlip(), A.Normalize()]))
            """,
            line=2, column=40,
        ),
    ]


def facts_text(expr) -> str:
    import libcst as cst
    return cst.Module([]).code_for_node(expr)
