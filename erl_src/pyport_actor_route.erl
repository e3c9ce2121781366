%% Routes an actor's own packets from the port (docs/actors.md) to its
%% proxy (py_actor). Called by pyport_worker; what it gets is untrusted
%% (decoded by pyport_term): an actor id is only believed when the loop's
%% pending table names an actor's proxy for it (pyport_calls:actor/2), and
%% only that process is told. A packet naming a plain task (a forged
%% actor_reply) reaches nobody, whatever send_allow says.
-module(pyport_actor_route).
-behaviour(pyport_route).

%% pyport_route.
-export([tags/0]).
-export([route/2]).

%% The largest acknowledgement believed in one packet: more than any
%% window (py_actor caps credit at its window anyway).
-define(MAX_ACK, 1 bsl 20).

%% pyport_route.

-spec tags() -> [atom()].
tags() ->
    [actor_started, actor_ack, actor_reply].

%% Hands `actor_started`, `actor_ack` and `actor_reply` to the proxy of the
%% actor they name as `{py_actor, Id, What}`; one for an actor that has
%% gone (a late ack) is dropped. `malformed` for fields of the wrong type.
-spec route(tuple(), pyport_route:context()) -> ok | malformed.
route({actor_started, Id}, #{loop := Loop}) when is_reference(Id) ->
    to_proxy(Id, started, Loop);
route({actor_ack, Id, N}, #{loop := Loop})
  when is_reference(Id), is_integer(N), N > 0, N =< ?MAX_ACK ->
    to_proxy(Id, {ack, N}, Loop);
route({actor_reply, Id, Token, Reply}, #{loop := Loop})
  when is_reference(Id), is_integer(Token), Token > 0 ->
    to_proxy(Id, {reply, Token, Reply}, Loop);
route(_, _) ->
    malformed.

%% Internal.

%% A forged id naming a plain task (or a stream) finds no actor: dropped.
to_proxy(Id, What, Loop) ->
    case pyport_calls:actor(Loop, Id) of
        {actor, Proxy} ->
            Proxy ! {py_actor, Id, What},
            ok;
        none ->
            ok
    end.
