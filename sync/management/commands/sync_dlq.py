import json

from django.core.management.base import BaseCommand, CommandError

from sync.dead_letters import dead_letter_replay, dead_letters_pending
from sync.models import DeadLetter


class Command(BaseCommand):
    help = "List, show and replay dead letters (tasks that exhausted their attempts)."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="dead letters not replayed yet (--all: every one)")
        listing.add_argument("--all", action="store_true")
        listing.add_argument("--task", help="only this task")
        show = actions.add_parser("show", help="one dead letter in full")
        show.add_argument("id", type=int)
        replay = actions.add_parser("replay", help="enqueue again from attempt 1")
        replay.add_argument("ids", type=int, nargs="*")
        replay.add_argument("--all", action="store_true", help="every dead letter not replayed yet")
        replay.add_argument("--task", help="with --all: only this task")

    def handle(self, *args, action: str, **options) -> None:
        getattr(self, f"handle_{action}")(**options)

    def handle_list(self, *, all: bool, task: str | None, **_) -> None:
        letters = DeadLetter.objects.all() if all else dead_letters_pending()
        if task:
            letters = letters.filter(task=task)
        self.stdout.write(f"{'ID':>6}  {'CREATED':19}  {'TASK':24}  {'KEY':14}  {'TRIES':>5}  {'REPLAYED':8}  ERROR")
        count = 0
        for letter in letters.order_by("id"):
            count += 1
            self.stdout.write(
                f"{letter.pk:>6}  {letter.created_at:%Y-%m-%d %H:%M:%S}  {letter.task[:24]:24}  {letter.key[:14]:14}  "
                f"{letter.attempts:>5}  {'yes' if letter.replayed_at else 'no':8}  {letter.error[:80]}"
            )
        self.stdout.write(f"{count} dead letter(s)")

    def handle_show(self, *, id: int, **_) -> None:
        letter = self._get(id)
        self.stdout.write(
            json.dumps(
                {
                    "id": letter.pk,
                    "message_id": letter.message_id,
                    "task": letter.task,
                    "topic": letter.topic,
                    "key": letter.key,
                    "kwargs": letter.kwargs,
                    "attempts": letter.attempts,
                    "error": letter.error,
                    "created_at": letter.created_at.isoformat(),
                    "replayed_at": letter.replayed_at.isoformat() if letter.replayed_at else None,
                },
                indent=2,
            )
        )

    def handle_replay(self, *, ids: list[int], all: bool, task: str | None, **_) -> None:
        if all == bool(ids):
            raise CommandError("name dead letter ids, or --all (not both)")
        if all:
            letters = dead_letters_pending()
            if task:
                letters = letters.filter(task=task)
            letters = list(letters.order_by("id"))
        else:
            letters = [self._get(letter_id) for letter_id in ids]
        for letter in letters:
            message_id = dead_letter_replay(letter=letter)
            self.stdout.write(f"replayed {letter.pk} ({letter.task} {letter.key}) as message {message_id}")
        self.stdout.write(f"{len(letters)} dead letter(s) replayed")

    def _get(self, letter_id: int) -> DeadLetter:
        try:
            return DeadLetter.objects.get(pk=letter_id)
        except DeadLetter.DoesNotExist:
            raise CommandError(f"no dead letter {letter_id}") from None
