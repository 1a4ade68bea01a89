"""pdedit: zero-shot video editing and sketch-conditioned generation with PixelDance."""

from setuptools import find_packages, setup

setup(
    name="pdedit",
    version="0.1.0",
    description="Zero-shot video editing and sketch-conditioned video generation with PixelDance",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["pdedit", "pdedit.*", "finetune", "finetune.*"]),
    package_data={"finetune": ["configs/*.yaml"]},
    install_requires=[
        # torch is resolved from the registry (a CUDA build that also runs on a CPU);
        # torchvision must match it, which is why neither is pinned to a CPU-only file.
        "torch>=2.1",
        "torchvision",
        "diffusers>=0.32",
        "transformers>=5.0",
        # diffusers' Wan pipeline cleans prompts with ftfy; T5 tokenizer folders may ship only spiece.model.
        "ftfy>=6",
        "sentencepiece>=0.2",
        "accelerate>=0.30",
        "safetensors>=0.4",
        "controlnet-aux>=0.0.9",
        # OpenCV without GUI: controlnet-aux requires this build; never add opencv-python.
        "opencv-python-headless>=4.8",
        "imageio-ffmpeg>=0.5",
        "moviepy>=1.0",
        "click>=8.1",
        "tqdm>=4.60",
        "numpy>=1.24",
        "pillow>=9",
        "scikit-image>=0.21",
        "scipy>=1.10",
        "pyyaml>=6",
    ],
    extras_require={
        "train": ["tensorboard>=2.14", "peft>=0.10"],
        "app": ["gradio>=6.0,<7"],
        # Everything the test suite exercises: notebooks, training extras, the app and its browser test.
        "dev": [
            "pytest>=7",
            "nbclient>=0.9",
            "nbformat>=5.9",
            "ipykernel>=6",
            "matplotlib>=3.7",
            "tensorboard>=2.14",
            "peft>=0.10",
            "gradio>=6.0,<7",
            "playwright>=1.40",
        ],
        "pose": ["mediapipe==0.10.21"],
    },
    entry_points={"console_scripts": ["pdedit=pdedit.cli:main"]},
)
