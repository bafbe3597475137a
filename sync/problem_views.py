"""The problems API: dead letters (list, inspect, replay one, several or all matching) and merge
conflicts (list, resolve by keeping either value). Thin over `sync.dead_letters` and
`sync.conflicts`, as the console's problems pages are."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from synchub.api import Conflict
from synchub.permissions import ModelPermissions

from .conflicts import ConflictNotResolvable, conflict_resolve, conflicts_filter
from .dead_letters import dead_letters_filter, dead_letters_replay
from .models import DeadLetter, SyncConflict
from .serializers import (
    ConflictResolveSerializer,
    DeadLetterQuerySerializer,
    DeadLetterReplaySerializer,
    DeadLetterSerializer,
    ReplayedSerializer,
    SyncConflictQuerySerializer,
    SyncConflictSerializer,
)


class ReplayPermissions(ModelPermissions):
    """A replay changes nothing of the letter's but its state: it needs "replay", not "add"."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.replay_%(model_name)s"]}


class ResolvePermissions(ModelPermissions):
    """Resolving a conflict changes it (and its item): "change", not the "add" of a POST."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


def _query(serializer_class, request: Request):
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query


@extend_schema(parameters=[DeadLetterQuerySerializer])
class DeadLetterListView(generics.ListAPIView):
    """Dead letters, newest first: sync operations that failed every attempt."""

    serializer_class = DeadLetterSerializer
    queryset = DeadLetter.objects.all()  # for the permission class; the list is the selector's

    def get_queryset(self):
        return dead_letters_filter(**_query(DeadLetterQuerySerializer, self.request).selector_kwargs())


class DeadLetterDetailView(generics.RetrieveAPIView):
    serializer_class = DeadLetterSerializer
    queryset = DeadLetter.objects.all()


def _replayed(count: int) -> Response:
    return Response(ReplayedSerializer({"replayed": count}).data, status=status.HTTP_200_OK)


class DeadLetterReplayView(APIView):
    """Queue one dead letter again, from its first attempt (0 when it was replayed already)."""

    permission_classes = [IsAuthenticated, ReplayPermissions]
    queryset = DeadLetter.objects.all()

    @extend_schema(operation_id="dead_letter_replay", request=None, responses=ReplayedSerializer)
    def post(self, request: Request, pk: int) -> Response:
        letters = DeadLetter.objects.filter(pk=pk)
        if not letters.exists():
            return Response({"detail": "No such dead letter."}, status=status.HTTP_404_NOT_FOUND)
        return _replayed(dead_letters_replay(letters=letters, replayed_by=request.user.get_username()))


class DeadLetterBulkReplayView(APIView):
    """Queue several dead letters again: the `ids` given, or `all` pending ones matching the filters."""

    permission_classes = [IsAuthenticated, ReplayPermissions]
    queryset = DeadLetter.objects.all()

    @extend_schema(operation_id="dead_letters_replay", request=DeadLetterReplaySerializer, responses=ReplayedSerializer)
    def post(self, request: Request) -> Response:
        body = DeadLetterReplaySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if body.validated_data.get("all"):
            letters = dead_letters_filter(**body.selector_kwargs())
        else:
            letters = DeadLetter.objects.filter(pk__in=body.validated_data["ids"])
        return _replayed(dead_letters_replay(letters=letters, replayed_by=request.user.get_username()))


@extend_schema(parameters=[SyncConflictQuerySerializer])
class SyncConflictListView(generics.ListAPIView):
    """Merge conflicts, newest first: a field changed on both sides since they last agreed."""

    serializer_class = SyncConflictSerializer
    queryset = SyncConflict.objects.all()

    def get_queryset(self):
        return conflicts_filter(**_query(SyncConflictQuerySerializer, self.request).selector_kwargs())


class SyncConflictResolveView(APIView):
    """Keep this hub's value (`local`) or the other system's (`remote`): the item takes it and
    every system is sent it; 409 when already resolved or not writable here."""

    permission_classes = [IsAuthenticated, ResolvePermissions]
    queryset = SyncConflict.objects.all()

    @extend_schema(request=ConflictResolveSerializer, responses=SyncConflictSerializer)
    def post(self, request: Request, pk: int) -> Response:
        body = ConflictResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        conflict = SyncConflict.objects.filter(pk=pk).first()
        if conflict is None:
            return Response({"detail": "No such conflict."}, status=status.HTTP_404_NOT_FOUND)
        try:
            resolved = conflict_resolve(
                conflict=conflict, keep=body.validated_data["keep"], resolved_by=request.user.get_username()
            )
        except ConflictNotResolvable as exc:
            raise Conflict(str(exc)) from exc
        return Response(SyncConflictSerializer(resolved).data)


