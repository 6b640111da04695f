"""EL502 keras-logits-loss-mismatch."""
from __future__ import annotations

from typing import Optional

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ModuleFacts
from evallint.fixkit import with_keyword
from evallint.rule import Change, Finding, Invalid, Rule

_CLASSES = {"binary": "BinaryCrossentropy", "categorical": "CategoricalCrossentropy",
            "sparse_categorical": "SparseCategoricalCrossentropy"}


class KerasLogitsLossMismatch(Rule):
    """
    ## What it does
    Flags a Keras model whose last `Dense` layer has no activation (it outputs raw
    scores, logits) and whose cross-entropy loss does not say `from_logits=True`:
    a string such as `"sparse_categorical_crossentropy"`, or a loss object built
    without `from_logits`.

    ## Why it is wrong
    Without `from_logits=True` Keras takes the outputs for probabilities: it clips
    them into (0, 1) and takes their logarithm. Every logit above 1 or below 0 is cut
    off, the gradients through the clipped values vanish, and training stalls or ends
    far below the accuracy the same network reaches in PyTorch, whose
    `CrossEntropyLoss` always expects logits.

    ## Example
    ```python
    model = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(6)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    ```

    ## Fix
    Pass `from_logits=True` (a string loss becomes the loss object), or end the model
    in a softmax/sigmoid. The fix is safe when the last layer is provably linear and
    the model has more than one output unit (accuracy is an argmax and does not
    change). For a single unit it is unsafe: the outputs become logits, so a
    threshold of 0.5 on `predict` (and the `"accuracy"` metric's) must become 0.

    ## References
    - tensorflow/docs#2102 (a text-classification exercise stuck near chance, 0.3 for 4 classes)
    - keras-team/keras-hub#1008 ("This will not converge! Pass `from_logits=True`")
    """

    code = "EL502"
    name = "keras-logits-loss-mismatch"
    summary = "A linear last layer (logits) with a cross-entropy loss that expects probabilities."
    severity = Severity.ERROR
    fixable = Applicability.SAFE
    tokens = (("crossentropy", "Crossentropy"), ("Dense",))

    def check(self, facts: ModuleFacts):
        for compiled in facts.keras.compiles:
            loss, output = compiled.loss, compiled.output
            if loss is None or loss.family is None or loss.from_logits is not False:
                continue
            if output is None or not output.provably_linear:
                continue
            written = facts.module.code_for_node(loss.expr)
            message = (f"the last layer `Dense({output.units if output.units is not None else '...'})` has no activation "
                       f"(it outputs logits), but the loss `{written}` expects probabilities: "
                       "pass `from_logits=True`")
            yield Finding(loss.expr, message, self._fix(facts, loss, output))

    def _fix(self, facts, loss, output):
        single = output.units is None or output.units <= 1
        applicability = Applicability.UNSAFE if single else Applicability.SAFE
        message = "Compute the loss from logits (`from_logits=True`)"
        if single:
            message += "; threshold the predictions at 0 instead of 0.5"
        node = loss.node
        if loss.form == "object":
            return self.fix(applicability, message, Change(node, with_keyword(node, "from_logits", "True")))
        prefix = _losses_prefix(facts)
        if prefix is None:
            return None  # no Keras name in scope to build the loss object from
        new = cst.parse_expression(f"{prefix}.{_CLASSES[loss.family]}(from_logits=True)")
        if node is not loss.expr and not isinstance(node, (cst.SimpleString, cst.Attribute, cst.Name)):
            return None
        return self.fix(applicability, message, Change(node, new))

    VALID = [
        # logits with from_logits=True: the TensorFlow quick-start
        """
        import tensorflow as tf
        model = tf.keras.models.Sequential([
            tf.keras.layers.Flatten(input_shape=(28, 28)),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dropout(0.2),
            tf.keras.layers.Dense(10),
        ])
        loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer="adam", loss=loss_fn, metrics=["accuracy"])
        """,
        # softmax output with the string loss
        """
        from tensorflow import keras
        from tensorflow.keras import layers
        model = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(6, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        """,
        # a linear Dense followed by an Activation layer
        """
        from keras.models import Sequential
        from keras.layers import Dense, Activation
        model = Sequential([Dense(32, input_shape=(16,)), Activation("relu"), Dense(1), Activation("sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        """,
        # regression: a linear output is right for mean squared error
        """
        from tensorflow import keras
        model = keras.Sequential([keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        """,
        # the activation comes from a variable: cannot tell
        """
        from tensorflow import keras
        model = keras.Sequential([keras.layers.Dense(10, activation=final_activation)])
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        """,
        # the loss object with from_logits=True, positional
        """
        import tensorflow as tf
        inputs = tf.keras.Input(shape=(20,))
        logits = tf.keras.layers.Dense(3)(inputs)
        model = tf.keras.Model(inputs, logits)
        model.compile("adam", tf.keras.losses.CategoricalCrossentropy(True))
        """,
    ]
    INVALID = [
        Invalid(
            """
            from tensorflow import keras
            from tensorflow.keras import layers
            model = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(6)])
            model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
            """,
            line=4, column=38,
            fixed="""
            from tensorflow import keras
            from tensorflow.keras import layers
            model = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(6)])
            model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
            """,
        ),
        # the string loss becomes the loss object
        Invalid(
            """
            import tensorflow as tf
            model = tf.keras.Sequential([
                tf.keras.layers.Dense(128, activation="relu"),
                tf.keras.layers.Dense(10, activation=None),
            ])
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            """,
            line=6, column=38,
            fixed="""
            import tensorflow as tf
            model = tf.keras.Sequential([
                tf.keras.layers.Dense(128, activation="relu"),
                tf.keras.layers.Dense(10, activation=None),
            ])
            model.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
            """,
        ),
        # a subclassed model and an explicit from_logits=False
        Invalid(
            """
            from tensorflow import keras
            class Classifier(keras.Model):
                def __init__(self):
                    super().__init__()
                    self.hidden = keras.layers.Dense(32, activation="relu")
                    self.head = keras.layers.Dense(4)
                def call(self, x):
                    return self.head(self.hidden(x))
            model = Classifier()
            model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=False))
            """,
            line=10, column=38,
            fixed="""
            from tensorflow import keras
            class Classifier(keras.Model):
                def __init__(self):
                    super().__init__()
                    self.hidden = keras.layers.Dense(32, activation="relu")
                    self.head = keras.layers.Dense(4)
                def call(self, x):
                    return self.head(self.hidden(x))
            model = Classifier()
            model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
            """,
        ),
        # one linear unit with binary cross-entropy: the fix is unsafe (thresholds move to 0)
        Invalid(
            """
            from tensorflow import keras
            inputs = keras.Input(shape=(30,))
            x = keras.layers.Dense(16, activation="relu")(inputs)
            out = keras.layers.Dense(1)(x)
            model = keras.Model(inputs, out)
            model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
            """,
            line=6, column=38, message_contains="from_logits=True",
            fixed="""
            from tensorflow import keras
            inputs = keras.Input(shape=(30,))
            x = keras.layers.Dense(16, activation="relu")(inputs)
            out = keras.layers.Dense(1)(x)
            model = keras.Model(inputs, out)
            model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
            """,
        ),
    ]


def _losses_prefix(facts: ModuleFacts) -> Optional[str]:
    """How this file can name `keras.losses`: `keras.losses`, `tf.keras.losses`, `losses`."""
    aliases = facts.aliases
    for local, full in aliases.items():
        if full in ("keras.losses", "tensorflow.keras.losses", "tf_keras.losses"):
            return local
    for local, full in aliases.items():
        if full in ("keras", "tensorflow.keras", "tf_keras"):
            return f"{local}.losses"
    for local, full in aliases.items():
        if full == "tensorflow":
            return f"{local}.keras.losses"
    return None
