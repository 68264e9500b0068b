"""Write the Vertex AI job configs: vertex/<preset>.yaml for each preset of tf_landslide.vertex.

    python vertex/generate.py

tests/test_vertex.py checks that the committed files equal what this script writes.
"""

from pathlib import Path

from tf_landslide import vertex

HERE = Path(__file__).resolve().parent


def main() -> None:
    for preset in vertex.PRESETS:
        path = HERE / f"{preset}.yaml"
        path.write_text(vertex.job_config_text(preset))
        print(path)


if __name__ == "__main__":
    main()
