%% The route of Python's requests of Erlang (`erlang.call`, `erlang.send`,
%% `erlang.whereis`, the `registered` check of the package's
%% `__getattr__`, `call_cancel` of a call Python gave up on): handed to
%% py_callback:serve/5 with the loop's port, packet bound, send policy and
%% the loop's running callbacks (pyport_callback_runs).
-module(pyport_serve).
-behaviour(pyport_route).

%% pyport_route.
-export([tags/0]).
-export([route/2]).

%% pyport_route.

-spec tags() -> [atom()].
tags() ->
    [call, send, whereis, registered, call_cancel].

-spec route(tuple(), pyport_route:context()) -> ok | malformed.
route({Kind, _, _, _} = Request, Context) when Kind =:= call; Kind =:= send ->
    serve(Request, Context);
route({Kind, _, _} = Request, Context) when Kind =:= whereis; Kind =:= send;
                                            Kind =:= registered ->
    serve(Request, Context);
route({call_cancel, _} = Request, Context) ->
    serve(Request, Context);
route(_, _) ->
    malformed.

%% Internal.

serve(Request, #{index := Index, port := Port, max_packet := Max, send_policy := Policy,
                 callbacks := Runs}) ->
    py_callback:serve(Request, #{worker => self(), port => Port, max_packet => Max},
                      Policy, Runs, Index).
