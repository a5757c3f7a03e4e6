"""The embedded synthetic benchmark: `benchmark` writes it to disk in the official COCO, PASCAL VOC and DAVIS layouts,
`render` draws its scenes, videos and label maps from `textures`' class catalogues, and `scenes` renders in-memory
scenes for the demo. Plain numpy and PIL: no download, no Ray."""
