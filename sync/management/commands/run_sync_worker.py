from sync.commands import IntegrationWorkerCommand
from sync.integrations import DIRECTIONS, integrations


class Command(IntegrationWorkerCommand):
    help = (
        "Run one integration's tasks of one direction, as its contract declares them: outward pushes "
        "local changes to the system, inward applies the system's news to the catalog."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--integration", required=True, choices=[integration.name for integration in integrations()])
        parser.add_argument("--direction", default="", choices=DIRECTIONS, help="default: both, in one consumer group")
        super().add_arguments(parser)

    def handle(self, *args, integration: str, direction: str, **options) -> None:
        self.integration, self.direction = integration, direction
        super().handle(*args, **options)
