"""The OpenAI Agents SDK under temporalio's OpenAIAgentsPlugin, each model call streaming
into a `chat_turn` task from the plugin's model activity."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from agents import Agent, ModelProvider, Runner, function_tool
    from temporalio.openai_agents import ModelActivityParameters, OpenAIAgentsPlugin

    from mistral_workflows.agents.openai_agents import TaskStreamingModelProvider


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


@workflow.defn
class SdkAgentWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        agent = Agent(name="weather", instructions="Answer briefly.", tools=[get_weather])
        result = await Runner.run(agent, prompt)
        return str(result.final_output)


def agents_plugin(provider: ModelProvider | None = None) -> OpenAIAgentsPlugin:
    """The SDK's plugin with a model provider that streams each response into a task
    (`provider` None: the SDK's OpenAI provider)."""
    return OpenAIAgentsPlugin(
        model_params=ModelActivityParameters(start_to_close_timeout=timedelta(seconds=60)),
        model_provider=TaskStreamingModelProvider(provider),
    )
