"""Evaluation: metrics (PSNR/SSIM and pyiqa protocols, BRISQUE), benchmark suites, the benchmark
runner and its reports (Markdown, CSV, JSON, HTML with SVG charts), published peer numbers."""
