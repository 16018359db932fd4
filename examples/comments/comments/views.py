"""POST /comments {"thread", "author", "text"} -> 201 {"id"}; GET /comments?thread=T -> the
thread's comments, newest first, and the node that served the read. The replikit token travels
in the X-Replikit-Token header (and a cookie); the middleware does all of it."""

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import replikit.django

from .models import Comment


@csrf_exempt
def comments(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        try:
            body = json.loads(request.body)
            comment = Comment.objects.create(thread=str(body["thread"]), author=str(body["author"]),
                                             text=str(body["text"]))
        except (ValueError, KeyError, TypeError) as exc:
            return JsonResponse({"error": f"expected JSON with thread, author, text: {exc}"}, status=400)
        return JsonResponse({"id": comment.id}, status=201)
    if request.method != "GET":
        return JsonResponse({"error": "GET or POST"}, status=405)
    rows = Comment.objects.filter(thread=request.GET.get("thread", ""))[:100]
    found = [{"id": c.id, "author": c.author, "text": c.text} for c in rows]
    route = replikit.django.last_route()
    return JsonResponse({"comments": found, "node": route.node or "primary", "reason": route.reason.name.lower()})


def status(request: HttpRequest) -> JsonResponse:
    state = replikit.django.get_state()
    nodes = [{"alias": n["alias"], "node": n["name"], "up": n["up"], "lag_ms": n["lag_ms"]} for n in state.nodes()]
    return JsonResponse({"nodes": nodes, "stats": state.stats()})
