"""The local orchestrator: the NFVO side of the Open Baton wire protocol, with loading, validation,
dependency resolution and deploy/teardown sequencing of network services."""

from gvnfm.orchestrator.deploy import Deployment, deploy, teardown
from gvnfm.orchestrator.errors import DeployFailed, DescriptorError, NotEnoughResources, OrchestratorError, VnfmError
from gvnfm.orchestrator.events import ProgressEvent
from gvnfm.orchestrator.loader import ServiceBundle, VnfPackageContent, aload_service, load_service
from gvnfm.orchestrator.nfvo import LocalNfvo
from gvnfm.orchestrator.records import NetworkServiceRecord
from gvnfm.orchestrator.validation import validate

__all__ = [
    "DeployFailed",
    "Deployment",
    "DescriptorError",
    "LocalNfvo",
    "NetworkServiceRecord",
    "NotEnoughResources",
    "OrchestratorError",
    "ProgressEvent",
    "ServiceBundle",
    "VnfPackageContent",
    "VnfmError",
    "aload_service",
    "deploy",
    "load_service",
    "teardown",
    "validate",
]
