"""The diffusion core: IR-SDE math (`sde`), samplers (`sampling`), tiled noise prediction
(`tiling`), checkpoints (`checkpoint`) and the restorer that joins them (`restorer`)."""
