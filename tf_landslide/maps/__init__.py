"""Full-scene landslide maps: sliding windows and their blend (tiling), outputs, polygons, the job (scene_map)."""
