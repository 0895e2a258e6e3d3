"""Evaluation: the protocol's metrics (PSNR, SSIM, code sparsity), its noise model, the
classical baselines (PCA, filters, BM3D, the linear denoiser) and denoising scores."""
from .metrics import evaluate, image_metrics, psnr, psnr_dataset, reconstruct, ssim

__all__ = ["evaluate", "image_metrics", "psnr", "psnr_dataset", "reconstruct", "ssim"]
