"""Offline validation gate for the GitOps repo (see docs/validation.md)."""
