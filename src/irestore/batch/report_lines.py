"""The sentences both pages of a restore report share (Markdown and HTML): the run summary
and which metrics ran."""

from __future__ import annotations


def cell(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def summary_lines(report: dict) -> list[str]:
    """The run in sentences, for the Markdown and HTML pages."""
    s, protocol = report["summary"], report["protocol"]
    lines = [f"{s['done']} restored, {s['failed']} failed; generated {report['generated']}."]
    if "mean_psnr" in s:
        lines.append(f"With references: mean PSNR {cell(s.get('mean_psnr_input'))} → {cell(s['mean_psnr'])} dB, "
                     f"SSIM {cell(s.get('mean_ssim_input'), 4)} → {cell(s.get('mean_ssim'), 4)}; "
                     f"{s.get('improved', 0)} improved, {s.get('worse', 0)} worse "
                     f"(protocol {protocol['name']} [{protocol['fingerprint']}]: {protocol['summary']}).")
    if "mean_lpips" in s:
        lines.append(f"Mean LPIPS against the references: {s['mean_lpips']:.4f} (lower is closer).")
    if "fid" in s:
        lines.append(f"FID of the outputs against the references: {s['fid']:.2f}.")
    if "mean_brisque" in s:
        lines.append(f"BRISQUE (no reference, lower is better): {cell(s.get('mean_brisque_input'))} → {cell(s['mean_brisque'])}.")
    if "mean_time_restore" in s:
        lines.append(f"Mean time per image {s['mean_time_restore']:.1f} s; peak memory {s['peak_memory_mb']:.0f} MB.")
    return lines


def metric_lines(report: dict) -> list[str]:
    """Which metrics ran here, and why the others did not."""
    return [f"{name}: {state}" for name, state in report["summary"]["metrics"].items()]
