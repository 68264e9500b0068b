"""Write the study's flagfiles: one per configuration, identical but for --config.

    python configs/generate.py        # rewrites configs/<name>.flags

The files are generated so they cannot drift apart; tests/test_configs.py checks that the
committed files equal what this script writes.
"""

from pathlib import Path

from tf_landslide.cube.channels import study_configs

HERE = Path(__file__).resolve().parent

DESCRIPTIONS = {"vv": "VV", "vh": "VH", "vv_vh": "VV+VH", "vv_vh_dem": "VV+VH+DEM"}


def describe(name: str, n_channels: int, timesteps: int) -> str:
    if name == "dem":
        return f"DEM only (elevation, slope, aspect, curvature): {n_channels} channels"
    prefix = name.rsplit("_t", 1)[0]
    return (
        f"{DESCRIPTIONS[prefix]}, mean of {timesteps} acquisition(s) before and after the event: {n_channels} channels"
    )


def study_flagfile(name: str) -> str:
    config = study_configs()[name]
    return f"""# {describe(name, len(config.channels), config.timesteps)} (Boehm et al. 2022 study).
# Train: python train.py --flagfile=configs/{name}.flags --model_dir=runs/{name}   (exports first if needed)
# Evaluate: python eval.py --flagfile=configs/{name}.flags --model_dir=runs/{name}
# Embedded cube: 118 positive chips (82 train / 23 val / 13 test); export a few seconds on 2 CPU cores, training
# (U-Net ResNet-50, 100 epochs) about 20 minutes on 2 CPU cores. Study results: see README ("The study").
--config={name}
--orbit=auto
--chip_size=128
--split=random
--split_fractions=0.7,0.2,0.1
--split_seed=42
--stats_from=train
--negative_ratio=0
--max_nodata_fraction=0.5
--record_dtype=float16
--records_dir=records
# The paper's model and recipe.
--arch=unet
--backbone=resnet50
--encoder_weights=
--epochs=100
--batch_size=64
--learning_rate=0.01
--weight_decay=1e-4
--weight_decay_mode=l2
--lr_factor=0.1
--lr_patience=10
--lr_threshold=1e-4
--augment=false
"""


def main():
    for name in study_configs():
        (HERE / f"{name}.flags").write_text(study_flagfile(name))


if __name__ == "__main__":
    main()
