"""Readers of datasets already on disk in their official layouts (pre-training images, segmentation, DAVIS).

Nothing is downloaded: a wrong or incomplete layout fails at construction with a LayoutError that names the
missing file or folder and shows the expected layout.
"""
