"""Offline checks of the deployment files: compose, Kubernetes, alert rules, dashboard, image."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
DEPLOY = ROOT / "deploy"
