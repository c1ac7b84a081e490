"""The MNIST CNN and MLP written by hand in Keras, the way the tutorials do (Chollet,
"Deep Learning with Python": listing 8.1 and chapter 2): Sequential models, RMSprop,
sparse categorical cross-entropy, ``model.fit`` on numpy arrays."""

from __future__ import annotations

import time

import keras
from keras import layers


def build(name: str) -> keras.Model:
    if name == "mnist_cnn":
        model = keras.Sequential(
            [
                keras.Input(shape=(28, 28, 1)),
                layers.Conv2D(32, 3, activation="relu"),
                layers.MaxPooling2D(2),
                layers.Conv2D(64, 3, activation="relu"),
                layers.MaxPooling2D(2),
                layers.Conv2D(128, 3, activation="relu"),
                layers.Flatten(),
                layers.Dense(10, activation="softmax"),
            ]
        )
    elif name == "mnist_mlp":
        model = keras.Sequential(
            [
                keras.Input(shape=(28, 28)),
                layers.Flatten(),
                layers.Dense(512, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        )
    else:
        raise ValueError(name)
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch of the last ``fit`` call."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
