"""The worker start-up hook: NATS connection, stream provisioning and interceptors."""

from mistral_workflows.worker._plugin import MistralWorkflowsPlugin
from mistral_workflows.worker._stream import StreamSettings, provision

__all__ = ["MistralWorkflowsPlugin", "StreamSettings", "provision"]
