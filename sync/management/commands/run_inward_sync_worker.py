from sync.commands import WorkerCommand
from sync.tasks import Task, registered_tasks

INWARD_TOPIC_SUFFIX = "_inward_sync"


class Command(WorkerCommand):
    help = "Apply changes from external systems (every task on a *_inward_sync topic) to the catalog."
    group_id = "synchub-inward"

    def get_tasks(self) -> list[Task]:
        return [task for task in registered_tasks() if task.topic.endswith(INWARD_TOPIC_SUFFIX)]
