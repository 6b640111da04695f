"""EL501 keras-binary-loss-multiclass."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ModuleFacts
from evallint.rule import Change, Finding, Invalid, Rule

_CATEGORICAL = {"binary_crossentropy": "categorical_crossentropy",
                "BinaryCrossentropy": "CategoricalCrossentropy"}


class KerasBinaryLossMulticlass(Rule):
    """
    ## What it does
    Flags a Keras model whose last layer is a softmax over more than two classes and
    that is compiled with `binary_crossentropy` (the string, the function or
    `BinaryCrossentropy()`).

    ## Why it is wrong
    Binary cross-entropy scores every output unit as its own yes/no problem, which is
    the loss for multi-label sigmoid outputs, not for one label out of C. With
    `metrics=["accuracy"]`, Keras 2 picks *binary* accuracy for a binary loss
    (keras-team/keras#3098): the share of the C×N output cells that round to the
    one-hot target. A model that predicts nothing on 10 classes scores 90%. The
    numbers look excellent and disagree with any hand-computed accuracy (or with the
    same model in PyTorch).

    ## Example
    ```python
    model = keras.Sequential([
        layers.Flatten(input_shape=(28, 28)),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    ```

    ## Fix
    Use `categorical_crossentropy` for one-hot labels (or
    `sparse_categorical_crossentropy` for integer labels). The fix writes
    `categorical_crossentropy` and is unsafe: evallint cannot see how the labels are
    encoded.

    ## References
    - keras-team/keras#3098
    - keras-team/keras#5335
    """

    code = "EL501"
    name = "keras-binary-loss-multiclass"
    summary = "A softmax over more than two classes is trained with binary cross-entropy."
    severity = Severity.ERROR
    fixable = Applicability.UNSAFE
    tokens = (("binary_crossentropy", "BinaryCrossentropy"), ("softmax", "Softmax"))

    def check(self, facts: ModuleFacts):
        for compiled in facts.keras.compiles:
            loss, output = compiled.loss, compiled.output
            if loss is None or loss.family != "binary":
                continue
            if output is None or output.activation != "softmax" or output.units is None or output.units <= 2:
                continue
            message = (f"the model ends in a softmax over {output.units} classes but is trained with binary "
                       "cross-entropy, which scores each output unit as a separate yes/no problem")
            if any(m in ("accuracy", "acc") for m in compiled.metrics):
                message += ("; `\"accuracy\"` then becomes binary accuracy over all "
                            f"{output.units} units (about {100 - 100 // output.units}% for a model that predicts nothing)")
            yield Finding(loss.expr, message, self._fix(facts, loss))

    def _fix(self, facts, loss):
        if loss.node is not loss.expr:
            return None  # the loss is defined elsewhere (a variable): explain only
        node = loss.node
        if loss.form == "string" and isinstance(node, cst.SimpleString):
            value = node.evaluated_value
            if value not in _CATEGORICAL:
                return None
            new = node.with_changes(value=node.value.replace(value, _CATEGORICAL[value]))
        elif loss.form in ("object", "function"):
            target = node.func if loss.form == "object" else node
            if not isinstance(target, cst.Attribute) or target.attr.value not in _CATEGORICAL:
                return None  # a bare imported name: renaming it would need a new import
            renamed = target.with_changes(attr=cst.Name(_CATEGORICAL[target.attr.value]))
            new = node.with_changes(func=renamed) if loss.form == "object" else renamed
        else:
            return None
        return self.fix(Applicability.UNSAFE,
                        "Use categorical cross-entropy (sparse_categorical_crossentropy for integer labels)",
                        Change(node, new))

    VALID = [
        # the recommended pairing
        """
        from tensorflow import keras
        from tensorflow.keras import layers
        model = keras.Sequential([
            layers.Flatten(input_shape=(28, 28)),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ])
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        """,
        # binary classification with one sigmoid unit
        """
        import tensorflow as tf
        model = tf.keras.Sequential([
            tf.keras.layers.Dense(16, activation="relu", input_shape=(30,)),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        """,
        # multi-label: independent sigmoid outputs are what binary cross-entropy is for
        """
        from keras.models import Sequential
        from keras.layers import Dense
        model = Sequential()
        model.add(Dense(64, activation="relu", input_dim=100))
        model.add(Dense(20, activation="sigmoid"))
        model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["binary_accuracy"])
        """,
        # a two-class softmax with binary cross-entropy on one-hot labels is equivalent
        """
        from tensorflow import keras
        model = keras.Sequential([keras.layers.Dense(2, activation="softmax", input_shape=(8,))])
        model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
        """,
        # integer labels with sparse categorical cross-entropy
        """
        import tensorflow as tf
        inputs = tf.keras.Input(shape=(32,))
        x = tf.keras.layers.Dense(64, activation="relu")(inputs)
        outputs = tf.keras.layers.Dense(5, activation="softmax")(x)
        model = tf.keras.Model(inputs, outputs)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        """,
        # the last layer depends on a condition: stay quiet
        """
        from keras.models import Sequential
        from keras.layers import Dense
        model = Sequential([Dense(64, activation="relu", input_dim=20)])
        if multi_label:
            model.add(Dense(10, activation="sigmoid"))
        else:
            model.add(Dense(10, activation="softmax"))
        model.compile(optimizer="adam", loss="binary_crossentropy")
        """,
        # the number of units is not known: stay quiet
        """
        from tensorflow import keras
        model = keras.Sequential([keras.layers.Dense(n_outputs, activation="softmax")])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        """,
    ]
    INVALID = [
        Invalid(
            """
            from tensorflow import keras
            from tensorflow.keras import layers
            model = keras.Sequential([
                layers.Flatten(input_shape=(28, 28)),
                layers.Dense(128, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ])
            model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
            """,
            line=8, column=38, message_contains="binary accuracy",
            fixed="""
            from tensorflow import keras
            from tensorflow.keras import layers
            model = keras.Sequential([
                layers.Flatten(input_shape=(28, 28)),
                layers.Dense(128, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ])
            model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
            """,
        ),
        # model.add, the number of classes in a variable, positional compile arguments
        Invalid(
            """
            from keras.models import Sequential
            from keras.layers import Dense, Dropout
            num_classes = 10
            model = Sequential()
            model.add(Dense(512, activation='relu', input_shape=(784,)))
            model.add(Dropout(0.2))
            model.add(Dense(num_classes, activation='softmax'))
            model.compile('rmsprop', 'binary_crossentropy', ['acc'])
            """,
            line=8, column=26,
            fixed="""
            from keras.models import Sequential
            from keras.layers import Dense, Dropout
            num_classes = 10
            model = Sequential()
            model.add(Dense(512, activation='relu', input_shape=(784,)))
            model.add(Dropout(0.2))
            model.add(Dense(num_classes, activation='softmax'))
            model.compile('rmsprop', 'categorical_crossentropy', ['acc'])
            """,
        ),
        # functional model with a separate Activation layer and a loss object
        Invalid(
            """
            import tensorflow as tf
            inputs = tf.keras.Input(shape=(64,))
            x = tf.keras.layers.Dense(6)(inputs)
            outputs = tf.keras.layers.Activation("softmax")(x)
            model = tf.keras.Model(inputs=inputs, outputs=outputs)
            model.compile(optimizer="adam", loss=tf.keras.losses.BinaryCrossentropy(), metrics=["accuracy"])
            """,
            line=6, column=38,
            fixed="""
            import tensorflow as tf
            inputs = tf.keras.Input(shape=(64,))
            x = tf.keras.layers.Dense(6)(inputs)
            outputs = tf.keras.layers.Activation("softmax")(x)
            model = tf.keras.Model(inputs=inputs, outputs=outputs)
            model.compile(optimizer="adam", loss=tf.keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
            """,
        ),
    ]
