"""EL503 keras-shuffled-predict-labels."""
from __future__ import annotations

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ModuleFacts
from evallint.fixkit import with_keyword
from evallint.rule import Change, Finding, Invalid, Rule


class KerasShuffledPredictLabels(Rule):
    """
    ## What it does
    Flags a Keras generator or dataset that shuffles (`flow_from_directory`,
    `flow_from_dataframe` and `image_dataset_from_directory` do unless given
    `shuffle=False`) whose `model.predict(...)` result is compared with labels read
    from it separately: `generator.classes`, or a second pass over the dataset.

    ## Why it is wrong
    `predict` returns the predictions in the order the shuffled batches came out;
    `.classes` lists the labels in file order, and a `tf.data` dataset reshuffles on
    every pass. The two lists do not line up, so the confusion matrix and the
    accuracy computed from them are those of a random classifier (50% for two
    classes) while `model.evaluate` on the same data reports 95%.

    ## Example
    ```python
    test_gen = datagen.flow_from_directory("data/test", target_size=(224, 224))
    probs = model.predict(test_gen)
    print(confusion_matrix(test_gen.classes, probs.argmax(axis=1)))
    ```

    ## Fix
    Build the evaluation generator with `shuffle=False` (safe). When the same
    generator also feeds `fit`, only explained: give training its own shuffling
    generator.

    ## References
    - keras-team/keras#11427 (`model.evaluate` good, the confusion matrix bad)
    - keras-team/keras#14599 (`predict` on a default-shuffled test generator)
    - keras-team/keras#6234
    """

    code = "EL503"
    name = "keras-shuffled-predict-labels"
    summary = "Predictions from a shuffling generator are compared with its labels in file order."
    severity = Severity.ERROR
    fixable = Applicability.SAFE
    tokens = (("flow_from_directory", "flow_from_dataframe", "_dataset_from_directory"), ("predict",))

    def check(self, facts: ModuleFacts):
        for found in facts.keras.shuffled_predictions:
            source = found.source
            default = "shuffles by default" if source.shuffle_arg is None else "is built with `shuffle=True`"
            message = (f"`{source.name}` {default}: `predict({source.name})` returns the predictions in shuffled "
                       f"order, but they are compared with {found.labels}, which "
                       f"{'lists the labels in file order' if source.method.startswith('flow_from') else 'reshuffles'}; "
                       "pass `shuffle=False`")
            fix = None
            if found.trains_on_source:
                message += " (to a generator of its own: this one also feeds `fit`)"
            else:
                fix = self.fix(Applicability.SAFE, "Keep the evaluation data in order with `shuffle=False`",
                               Change(source.call, with_keyword(source.call, "shuffle", "False")))
            yield Finding(source.call, message, fix)

    VALID = [
        # the recommended way: no shuffling for the data that is predicted
        """
        from tensorflow.keras.preprocessing.image import ImageDataGenerator
        from sklearn.metrics import confusion_matrix
        datagen = ImageDataGenerator(rescale=1.0 / 255)
        test_gen = datagen.flow_from_directory("data/test", target_size=(150, 150), shuffle=False)
        probs = model.predict(test_gen)
        print(confusion_matrix(test_gen.classes, probs.argmax(axis=1)))
        """,
        # a shuffled training generator is fine; predictions and labels taken batch by batch
        """
        import numpy as np
        from tensorflow.keras.preprocessing.image import ImageDataGenerator
        datagen = ImageDataGenerator(rescale=1.0 / 255)
        train_gen = datagen.flow_from_directory("data/train", target_size=(150, 150))
        model.fit(train_gen, epochs=5)
        y_true, y_pred = [], []
        for i in range(len(train_gen)):
            x, y = train_gen[i]
            y_pred.extend(model.predict(x).argmax(1))
            y_true.extend(y.argmax(1))
        """,
        # a tf.data dataset without shuffling, labels from a second pass
        """
        import numpy as np
        import tensorflow as tf
        test_ds = tf.keras.utils.image_dataset_from_directory("data/test", image_size=(180, 180), shuffle=False)
        y_true = np.concatenate([y for x, y in test_ds], axis=0)
        y_pred = np.argmax(model.predict(test_ds), axis=1)
        print((y_true == y_pred).mean())
        """,
        # the dataset shuffles, but predictions and labels come from the same batches
        """
        import numpy as np
        import tensorflow as tf
        val_ds = tf.keras.utils.image_dataset_from_directory("data/val", image_size=(180, 180))
        y_true, y_pred = [], []
        for images, labels in val_ds:
            y_pred.append(np.argmax(model.predict(images), axis=1))
            y_true.append(labels.numpy())
        print(np.mean(np.concatenate(y_true) == np.concatenate(y_pred)))
        """,
        # printing the two side by side is not a comparison
        """
        from keras.preprocessing.image import ImageDataGenerator
        gen = ImageDataGenerator().flow_from_directory("data/test")
        preds = model.predict(gen)
        print(len(preds), len(gen.classes))
        """,
        # evaluate() on a shuffled generator computes the metric per batch: correct
        """
        from keras.preprocessing.image import ImageDataGenerator
        test_gen = ImageDataGenerator().flow_from_directory("data/test")
        loss, acc = model.evaluate(test_gen)
        print(test_gen.classes[:10])
        """,
    ]
    INVALID = [
        Invalid(
            """
            from tensorflow.keras.preprocessing.image import ImageDataGenerator
            from sklearn.metrics import classification_report
            import numpy as np
            test_datagen = ImageDataGenerator(rescale=1.0 / 255)
            test_generator = test_datagen.flow_from_directory(
                "data/test",
                target_size=(224, 224),
                batch_size=32,
                class_mode="categorical",
            )
            predictions = model.predict(test_generator)
            y_pred = np.argmax(predictions, axis=1)
            print(classification_report(test_generator.classes, y_pred))
            """,
            line=5, column=18, message_contains="file order",
            fixed="""
            from tensorflow.keras.preprocessing.image import ImageDataGenerator
            from sklearn.metrics import classification_report
            import numpy as np
            test_datagen = ImageDataGenerator(rescale=1.0 / 255)
            test_generator = test_datagen.flow_from_directory(
                "data/test",
                target_size=(224, 224),
                batch_size=32,
                class_mode="categorical",
                shuffle=False,
            )
            predictions = model.predict(test_generator)
            y_pred = np.argmax(predictions, axis=1)
            print(classification_report(test_generator.classes, y_pred))
            """,
        ),
        # a tf.data dataset read twice: it reshuffles on each pass
        Invalid(
            """
            import numpy as np
            import tensorflow as tf
            test_ds = tf.keras.utils.image_dataset_from_directory("data/test", image_size=(180, 180), batch_size=32)
            y_pred = np.argmax(model.predict(test_ds), axis=1)
            y_true = np.concatenate([y for x, y in test_ds], axis=0)
            print("accuracy", np.mean(y_pred == y_true))
            """,
            line=3, column=11, message_contains="reshuffles",
            fixed="""
            import numpy as np
            import tensorflow as tf
            test_ds = tf.keras.utils.image_dataset_from_directory("data/test", image_size=(180, 180), batch_size=32, shuffle=False)
            y_pred = np.argmax(model.predict(test_ds), axis=1)
            y_true = np.concatenate([y for x, y in test_ds], axis=0)
            print("accuracy", np.mean(y_pred == y_true))
            """,
        ),
        # the same generator also trains the model: explained, no fix
        Invalid(
            """
            from keras.preprocessing.image import ImageDataGenerator
            gen = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory("data", shuffle=True)
            model.fit(gen, epochs=3)
            preds = model.predict(gen) > 0.5
            print((preds.ravel() == gen.classes).mean())
            """,
            line=2, column=7, message_contains="also feeds",
        ),
    ]
