"""EL601 softmax-before-cross-entropy."""
from __future__ import annotations

from evallint.diagnostic import Severity
from evallint.facts import ModuleFacts
from evallint.rule import Finding, Invalid, Rule


def _short(facts: ModuleFacts, node) -> str:
    text = " ".join(facts.module.code_for_node(node).split())
    return text if len(text) <= 50 else text[:47] + "..."


def activation_findings(facts: ModuleFacts, activation: str, loss_applies):
    """(node, explanation) for each place where `activation` is applied and its output
    reaches a loss for which `loss_applies(loss)` holds: the activation ending a model
    (its `forward` or `nn.Sequential`), or one applied by hand. One finding per place,
    however many loss calls it reaches. Shared by EL601 and EL602."""
    seen: set[int] = set()
    for lc in facts.loss_calls:
        if lc.input is None or not loss_applies(lc.loss):
            continue
        got = facts.outputs.activation_reaching(lc.input, lc.stmt)
        if got is None or got[0].activation != activation or id(got[0].node) in seen:
            continue
        end, source = got
        seen.add(id(end.node))
        reaches = f"`{_short(facts, lc.call)}`"
        if source == "explicit":
            where = f"`{_short(facts, end.node)}` is passed to {reaches}"
        else:
            where = f"the model `{source}` ends in `{_short(facts, end.node)}`, and its output reaches {reaches}"
        yield end.node, lc, where


class SoftmaxBeforeCrossEntropy(Rule):
    """
    ## What it does
    Flags `nn.CrossEntropyLoss` / `F.cross_entropy` applied to probabilities: the
    output of a model whose `forward` (or `nn.Sequential`) ends in a softmax, or a
    value passed through `softmax` on its way to the loss.

    ## Why it is wrong
    PyTorch's cross-entropy takes logits and applies `log_softmax` itself. Fed
    probabilities, it computes the loss of `softmax(softmax(z))`: every input lies in
    [0, 1], so the second softmax is almost flat, the gradients shrink by an order of
    magnitude and training stalls at a loss near `log(C)` with a poor accuracy. The
    Keras habit of ending classifiers in a softmax is the usual source.

    ## Example
    ```python
    class Net(nn.Module):
        def forward(self, x):
            return F.softmax(self.fc2(F.relu(self.fc1(x))), dim=1)

    criterion = nn.CrossEntropyLoss()
    loss = criterion(model(inputs), labels)
    ```

    ## Fix
    Return the logits from `forward` and apply `softmax` only where probabilities are
    reported (`torch.softmax(model(x), dim=1)` at inference). A model that must return
    probabilities can end in `log_softmax` and train with `nn.NLLLoss`. Not fixed
    automatically: other code may rely on the probabilities.

    ## References
    - bowang-lab/Transformer-GCN-QA#32 ("Removes erroneous extra softmax")
    - ariecattan/SciCo#2 (validation loss stuck near 1.0 from a double softmax)
    - NaJaeMin92/pytorch-DANN#7
    """

    code = "EL601"
    name = "softmax-before-cross-entropy"
    summary = "Probabilities from a softmax are fed to CrossEntropyLoss, which applies log-softmax itself."
    severity = Severity.ERROR
    tokens = (("softmax", "Softmax"), ("cross_entropy", "CrossEntropyLoss"))

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for node, lc, where in activation_findings(facts, "softmax", lambda loss: loss.applies_log_softmax):
            yield Finding(node, f"{where}, but `{lc.loss.short}` applies log-softmax itself: the loss sees "
                                   "softmax(softmax(logits)) and training stalls; pass the logits and apply "
                                   "softmax only to report probabilities")

    VALID = [
        # logits reach the loss; softmax only at inference
        """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(20, 64)
                self.fc2 = nn.Linear(64, 3)
            def forward(self, x):
                return self.fc2(torch.relu(self.fc1(x)))
        model = Net()
        criterion = nn.CrossEntropyLoss()
        for x, y in train_loader:
            loss = criterion(model(x), y)
            loss.backward()
        with torch.no_grad():
            probs = torch.softmax(model(x_new), dim=1)
        """,
        # log_softmax with NLLLoss
        """
        import torch.nn as nn
        import torch.nn.functional as F
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(784, 10)
            def forward(self, x):
                return F.log_softmax(self.fc(x), dim=1)
        model = Net()
        for data, target in train_loader:
            output = model(data)
            loss = F.nll_loss(output, target)
        """,
        # softmax in forward only at inference time
        """
        import torch.nn as nn
        import torch.nn.functional as F
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(16, 4)
            def forward(self, x):
                logits = self.fc(x)
                if self.training:
                    return logits
                return F.softmax(logits, dim=1)
        model = Net()
        loss = F.cross_entropy(model(x), y)
        """,
        # softmax of the teacher is the target, not the input
        """
        import torch.nn.functional as F
        loss = F.cross_entropy(student(x), F.softmax(teacher(x) / 4.0, dim=1))
        """,
        # a pretrained network whose new head ends in LogSoftmax (log_softmax is idempotent)
        """
        import torch.nn as nn
        from torchvision import models
        model = models.resnet50(weights="IMAGENET1K_V2")
        model.fc = nn.Sequential(nn.Linear(2048, 256), nn.ReLU(), nn.Linear(256, 10), nn.LogSoftmax(dim=1))
        criterion = nn.CrossEntropyLoss()
        for inputs, labels in train_loader:
            loss = criterion(model(inputs), labels)
        """,
        # a Sequential that ends in LogSoftmax with NLLLoss
        """
        import torch.nn as nn
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3), nn.LogSoftmax(dim=1))
        criterion = nn.NLLLoss()
        loss = criterion(model(x), y)
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn
            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(20, 64)
                    self.fc2 = nn.Linear(64, 3)
                    self.softmax = nn.Softmax(dim=1)
                def forward(self, x):
                    x = torch.relu(self.fc1(x))
                    return self.softmax(self.fc2(x))
            model = Classifier()
            criterion = nn.CrossEntropyLoss()
            for inputs, labels in train_loader:
                outputs = model(inputs)
                loss = criterion(outputs, labels)
                loss.backward()
            """,
            line=11, column=16, message_contains="self.softmax(self.fc2(x))",
        ),
        # an nn.Sequential ending in Softmax, the loss passed to a train function
        Invalid(
            """
            import torch.nn as nn
            def train(model, loader, loss_fn, opt):
                for x, y in loader:
                    opt.zero_grad()
                    loss = loss_fn(model(x), y)
                    loss.backward()
                    opt.step()
            net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3), nn.Softmax(dim=1))
            criterion = nn.CrossEntropyLoss()
            train(net, train_loader, criterion, optimizer)
            """,
            line=8, column=68,
        ),
        # the head of a pretrained network replaced by one that ends in Softmax
        Invalid(
            """
            import torch.nn as nn
            from torchvision import models
            model = models.resnet50(weights="IMAGENET1K_V2")
            model.fc = nn.Sequential(nn.Linear(2048, 512), nn.ReLU(), nn.Linear(512, 27), nn.Softmax(dim=1))
            criterion = nn.CrossEntropyLoss()
            for inputs, labels in trainloader:
                logps = model.forward(inputs)
                loss = criterion(logps, labels)
            """,
            line=4, column=79,
        ),
        # softmax applied by hand before F.cross_entropy
        Invalid(
            """
            import torch.nn.functional as F
            probs = F.softmax(model(images), dim=1)
            loss = F.cross_entropy(probs, labels)
            """,
            line=2, column=9,
        ),
    ]
