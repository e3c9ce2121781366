%% The route of Python's requests of Erlang (`erlang.call`, `erlang.send`,
%% `erlang.whereis`, the `registered` check of the package's
%% `__getattr__`): handed to py_callback:serve/4 with the loop's port,
%% packet bound and send policy.
-module(pyport_serve).
-behaviour(pyport_route).

%% pyport_route.
-export([tags/0]).
-export([route/2]).

%% pyport_route.

-spec tags() -> [atom()].
tags() ->
    [call, send, whereis, registered].

-spec route(tuple(), pyport_route:context()) -> ok | malformed.
route({Kind, _, _, _} = Request, Context) when Kind =:= call; Kind =:= send ->
    serve(Request, Context);
route({Kind, _, _} = Request, Context) when Kind =:= whereis; Kind =:= send;
                                            Kind =:= registered ->
    serve(Request, Context);
route(_, _) ->
    malformed.

%% Internal.

serve(Request, #{port := Port, max_packet := Max, send_policy := Policy}) ->
    _ = py_callback:serve(Request, Port, Max, Policy),
    ok.
