"""`croc compare`: the paper's tables from an experiment's MLflow runs.

    reading.py   an experiment's runs from MLflow into pandas
    tables.py    the tables: rows (pre-trainings, external checkpoints), columns (tasks, datasets), cells
    render.py    the tables in the terminal, as Markdown and as charts, and the compare run that keeps them
"""
