"""Experiments that reproduce a claim end to end (data, training, table, figure); the CLI's ``aekit experiment``."""

from .few_labels import (VARIANTS, epochs_for_steps, labelled_subset, markdown_table, plot_few_labels, run_few_labels,
                         summarize)

__all__ = ["VARIANTS", "epochs_for_steps", "labelled_subset", "markdown_table", "plot_few_labels", "run_few_labels",
           "summarize"]
