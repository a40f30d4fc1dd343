"""Deployment files (Dockerfiles, Kubernetes manifests); a package only so that its tests
share helpers."""
