"""Image-quality measures: full-reference metrics (PSNR, SSIM and pyiqa protocols: LPIPS, FID, ...)
and the BRISQUE no-reference score. Pure functions of images, used by the planner, the batch
quality report, training validation and the benchmark."""
