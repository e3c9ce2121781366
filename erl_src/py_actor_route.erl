%% Routes an actor's own packets from the port (docs/actors.md) to its
%% proxy (py_actor). Called by py_event_worker; what it gets is untrusted
%% (decoded by pyport_term): an actor id is only believed when the loop's
%% pending table names a process for it and that process is marked as an
%% actor's proxy in the loop's caller index (mark/1), and only that
%% process is told. A packet naming a plain task (a forged actor_reply)
%% reaches nobody, whatever send_allow says.
-module(py_actor_route).

%% API.
-export([route/3]).
-export([mark/1]).

%% The largest acknowledgement believed in one packet: more than any
%% window (py_actor caps credit at its window anyway).
-define(MAX_ACK, 1 bsl 20).

%% API.

%% Hands `actor_started`, `actor_ack` and `actor_reply` to the proxy of the
%% actor they name as `{py_actor, Id, What}`; one for an actor that has
%% gone (a late ack) is dropped. `malformed` for fields of the wrong type.
-spec route(tuple(), ets:tid(), ets:tid()) -> ok | malformed.
route({actor_started, Id}, Pending, ByCaller) when is_reference(Id) ->
    to_proxy(Id, started, Pending, ByCaller);
route({actor_ack, Id, N}, Pending, ByCaller)
  when is_reference(Id), is_integer(N), N > 0, N =< ?MAX_ACK ->
    to_proxy(Id, {ack, N}, Pending, ByCaller);
route({actor_reply, Id, Token, Reply}, Pending, ByCaller)
  when is_reference(Id), is_integer(Token), Token > 0 ->
    to_proxy(Id, {reply, Token, Reply}, Pending, ByCaller);
route(_, _, _) ->
    malformed.

%% The row a proxy puts in its loop's caller index ({{CallerPid, TaskRef}}
%% rows): keyed by the proxy, so that the worker's clean-up of a dead
%% caller's rows takes it too; its second element is no task reference,
%% so nothing there takes it for a task.
-spec mark(pid()) -> {{pid(), py_actor}}.
mark(Proxy) ->
    {{Proxy, py_actor}}.

%% Internal.

%% A forged id naming a plain task's caller finds no mark: dropped.
to_proxy(Id, What, Pending, ByCaller) ->
    case ets:lookup(Pending, Id) of
        [{Id, Proxy}] when is_pid(Proxy) ->
            _ = ets:member(ByCaller, element(1, mark(Proxy)))
                andalso (Proxy ! {py_actor, Id, What}),
            ok;
        _ ->
            ok
    end.
