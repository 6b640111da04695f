"""The Keras, model-output and shape facts behind EL501-EL503 and EL601-EL603, and the
premises of those rules checked on real torch tensors."""
from __future__ import annotations

import math
import textwrap

import libcst as cst
import pytest

from evallint.facts import ModuleFacts


def facts_of(code: str) -> ModuleFacts:
    return ModuleFacts(cst.parse_module(textwrap.dedent(code).lstrip("\n")))


def only_compile(code: str):
    compiles = facts_of(code).keras.compiles
    assert len(compiles) == 1
    return compiles[0]


# ------------------------------------------------------------------ Keras models

@pytest.mark.parametrize("code,units,activation", [
    # Sequential list, tf.keras spelling
    ("""
     import tensorflow as tf
     m = tf.keras.Sequential([tf.keras.layers.Dense(64, activation="relu"), tf.keras.layers.Dense(10, activation="softmax")])
     m.compile(loss="categorical_crossentropy")
     """, 10, "softmax"),
    # model.add with an Activation layer after a linear Dense, units from a constant
    ("""
     from keras.models import Sequential
     from keras.layers import Dense, Activation
     N = 5
     m = Sequential()
     m.add(Dense(N))
     m.add(Activation("softmax"))
     m.compile(loss="categorical_crossentropy")
     """, 5, "softmax"),
    # functional model, activation given as a function object
    ("""
     import tensorflow as tf
     from tensorflow import keras
     inp = keras.Input(shape=(8,))
     out = keras.layers.Dense(3, activation=tf.nn.softmax)(keras.layers.Dense(16)(inp))
     m = keras.Model(inputs=inp, outputs=out)
     m.compile(loss="sparse_categorical_crossentropy")
     """, 3, "softmax"),
    # subclassed model, logits
    ("""
     from tensorflow import keras
     class Net(keras.Model):
         def __init__(self):
             super().__init__()
             self.head = keras.layers.Dense(4)
         def call(self, x):
             return self.head(x)
     m = Net()
     m.compile(loss="categorical_crossentropy")
     """, 4, "linear"),
    # a builder function that returns the model, star import
    ("""
     from keras.layers import *
     from keras.models import Sequential
     def build():
         model = Sequential([Dense(32, activation="relu"), Dense(1, activation="sigmoid")])
         return model
     m = build()
     m.compile(loss="binary_crossentropy")
     """, 1, "sigmoid"),
])
def test_keras_output_layer(code, units, activation):
    compiled = only_compile(code)
    assert compiled.output is not None
    assert (compiled.output.units, compiled.output.activation) == (units, activation)


@pytest.mark.parametrize("code", [
    # the activation is a variable: unknown
    """
    from tensorflow import keras
    m = keras.Sequential([keras.layers.Dense(10, activation=act)])
    m.compile(loss="categorical_crossentropy")
    """,
    # layers come from a list built elsewhere
    """
    from tensorflow import keras
    m = keras.Sequential(layer_list)
    m.compile(loss="categorical_crossentropy")
    """,
    # a custom last layer
    """
    from tensorflow import keras
    m = keras.Sequential([keras.layers.Dense(10), MyHead()])
    m.compile(loss="categorical_crossentropy")
    """,
    # the model is loaded, not built here
    """
    from tensorflow import keras
    m = keras.models.load_model("m.h5")
    m.compile(loss="categorical_crossentropy")
    """,
])
def test_keras_output_unknown(code):
    output = only_compile(code).output
    assert output is None or output.activation is None


@pytest.mark.parametrize("loss,family,form,from_logits", [
    ('"binary_crossentropy"', "binary", "string", False),
    ("keras.losses.SparseCategoricalCrossentropy(from_logits=True)", "sparse_categorical", "object", True),
    ("keras.losses.CategoricalCrossentropy()", "categorical", "object", False),
    ("keras.losses.categorical_crossentropy", "categorical", "function", False),
    ("keras.losses.BinaryCrossentropy(from_logits=flag)", "binary", "object", None),
    ('"mse"', None, "string", False),
])
def test_keras_loss(loss, family, form, from_logits):
    compiled = only_compile(f"""
        from tensorflow import keras
        m = keras.Sequential([keras.layers.Dense(3)])
        m.compile(optimizer="adam", loss={loss}, metrics=["accuracy"])
        """)
    assert (compiled.loss.family, compiled.loss.form, compiled.loss.from_logits) == (family, form, from_logits)
    assert compiled.metrics == ["accuracy"]


def test_keras_loss_through_a_name_and_positional_compile():
    compiled = only_compile("""
        import tensorflow as tf
        loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        m = tf.keras.Sequential([tf.keras.layers.Dense(10)])
        m.compile("adam", loss_fn, ["acc"])
        """)
    assert compiled.loss.from_logits is True and compiled.metrics == ["acc"]


def test_shuffled_prediction_needs_default_shuffle_and_a_second_label_source():
    base = """
        from tensorflow.keras.preprocessing.image import ImageDataGenerator
        gen = ImageDataGenerator().flow_from_directory("d"{extra})
        p = model.predict(gen)
        print((p.argmax(1) == gen.classes).mean())
        """
    assert len(facts_of(base.format(extra="")).keras.shuffled_predictions) == 1
    assert facts_of(base.format(extra=", shuffle=False")).keras.shuffled_predictions == []
    assert facts_of(base.format(extra=", shuffle=flag")).keras.shuffled_predictions == []


# ------------------------------------------------------------------ PyTorch outputs

@pytest.mark.parametrize("forward,activation", [
    ("return F.softmax(self.fc(x), dim=1)", "softmax"),
    ("return self.fc(x).softmax(dim=-1)", "softmax"),
    ("return F.log_softmax(self.fc(x), dim=1)", "log_softmax"),
    ("x = self.fc(x)\n                return torch.sigmoid(x)", "sigmoid"),
    ("return self.fc(x)", "none"),
    ("return torch.sigmoid(self.fc(x)).squeeze(1)", "sigmoid"),
])
def test_forward_end(forward, activation):
    facts = facts_of(f"""
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 3)
            def forward(self, x):
                {forward}
        """)
    assert facts.outputs.class_end("Net").activation == activation


def test_forward_with_disagreeing_returns_is_unknown():
    facts = facts_of("""
        import torch.nn as nn
        import torch.nn.functional as F
        class Net(nn.Module):
            def forward(self, x):
                if self.training:
                    return self.fc(x)
                return F.softmax(self.fc(x), dim=1)
        """)
    assert facts.outputs.class_end("Net") is None


def test_sequential_end_and_out_features():
    facts = facts_of("""
        import torch.nn as nn
        head = nn.Sequential(nn.Linear(16, 1), nn.Sigmoid())
        multi = nn.Sequential(nn.Linear(16, 4), nn.ReLU(), nn.Linear(4, 3), nn.Softmax(dim=1))
        x = 1
        """)
    at = facts.statements[-1]
    single = facts.outputs.model_end("head", at)
    assert (single.activation, single.out_features) == ("sigmoid", 1)
    multi = facts.outputs.model_end("multi", at)
    assert (multi.activation, multi.out_features) == ("softmax", 3)


# ------------------------------------------------------------------ shapes

def _shape_facts(loop_body: str, dataset: str = 'datasets.ImageFolder("d")'):
    facts = facts_of(f"""
        import torch
        import torch.nn as nn
        from torchvision import datasets
        from torch.utils.data import DataLoader
        loader = DataLoader({dataset}, batch_size=8)
        model = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
        for x, y in loader:
            {loop_body}
        """)
    return facts, facts.statements[-1]


def test_column_and_vector_are_known():
    facts, at = _shape_facts("ok = (torch.sigmoid(model(x)) > 0.5).float() == y")
    left, right, _, _ = facts.shapes.comparisons()[0]
    assert facts.shapes.column(left, at) is not None
    assert facts.shapes.vector(right, at) is not None


def test_squeezed_output_is_not_a_column():
    facts, at = _shape_facts("ok = (model(x).squeeze(1) > 0) == y")
    left, _, _, _ = facts.shapes.comparisons()[0]
    assert facts.shapes.column(left, at) is None


def test_labels_of_an_unknown_dataset_are_unknown():
    facts, at = _shape_facts("ok = (model(x) > 0) == y", dataset="my_dataset")
    _, right, _, _ = facts.shapes.comparisons()[0]
    assert facts.shapes.vector(right, at) is None


# ------------------------------------------------------------------ the premises, on real tensors

def test_column_against_vector_broadcasts_to_n_by_n():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    n = 64
    model = torch.nn.Linear(5, 1)
    x, y = torch.randn(n, 5), torch.randint(0, 2, (n,))
    with torch.no_grad():
        preds = (torch.sigmoid(model(x)) > 0.5).float()
    assert (preds == y).shape == (n, n)
    assert (preds.squeeze(1) == y).shape == (n,)
    # the broadcast count is not a count of samples: it can exceed the sample count
    assert (preds == y).sum().item() != (preds.squeeze(1) == y).sum().item()


def test_sigmoid_before_bce_with_logits_cannot_fit():
    torch = pytest.importorskip("torch")
    target = torch.ones(4, 1)
    logits = torch.full((4, 1), 20.0)
    loss = torch.nn.BCEWithLogitsLoss()
    assert loss(logits, target).item() < 1e-6
    # sigmoid(sigmoid(z)) < sigmoid(1): the loss never drops below -log(sigmoid(1)) ~ 0.313
    assert loss(torch.sigmoid(logits), target).item() > 0.31


def test_softmax_before_cross_entropy_cannot_fit():
    torch = pytest.importorskip("torch")
    classes = 10
    logits = torch.zeros(2, classes)
    logits[:, 3] = 50.0
    target = torch.tensor([3, 3])
    loss = torch.nn.CrossEntropyLoss()
    assert loss(logits, target).item() < 1e-6
    floor = -math.log(math.e / (math.e + classes - 1))  # the best case for probabilities
    assert loss(torch.softmax(logits, dim=1), target).item() == pytest.approx(floor, rel=1e-3)
    assert floor > 1.4
