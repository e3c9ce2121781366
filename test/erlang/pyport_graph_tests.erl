%% The shape of the Erlang side, checked on the built beams: no cycle in
%% the module call graph (xref's module graph, strongly connected
%% components), and no internal module (`pyport_*`) calling a public one
%% (`py`, `py_*`), except the supervisors and the application callback,
%% which start the public modules' processes.
-module(pyport_graph_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

%% Public modules that internal ones may call, each for one reason:
%% py_telemetry's handlers are the events the internals emit
%% (execute/3, task_stop/4); py_callback's registry is what the worker's
%% route of Python's requests serves (serve/4, send_policy/2).
-define(SHARED, [py_telemetry, py_callback]).

-spec no_cycle_test() -> ok.
no_cycle_test() ->
    ?assertEqual([], with_graph(fun digraph_utils:cyclic_strong_components/1)).

-spec internal_never_calls_public_test() -> ok.
internal_never_calls_public_test() ->
    Calls = with_graph(fun(G) ->
                               [{From, To} || E <- digraph:edges(G),
                                              {_, From, To, _} <- [digraph:edge(G, E)],
                                              internal(From), public(To),
                                              not starter(From),
                                              not lists:member(To, ?SHARED)]
                       end),
    ?assertEqual([], lists:sort(Calls)).

%% Internal.

with_graph(Fun) ->
    Ebin = filename:dirname(code:which(pyport_calls)),
    {ok, Xref} = xref:start([{xref_mode, modules}]),
    try
        {ok, _} = xref:add_directory(Xref, Ebin, [{warnings, false}]),
        {ok, Edges} = xref:q(Xref, "ME"),
        G = digraph:new(),
        try
            _ = [begin
                 digraph:add_vertex(G, From),
                 digraph:add_vertex(G, To),
                 digraph:add_edge(G, From, To)
             end || {From, To} <- Edges, From =/= To, ours(From), ours(To)],
            Fun(G)
        after
            digraph:delete(G)
        end
    after
        xref:stop(Xref)
    end.

ours(Module) ->
    internal(Module) orelse public(Module).

internal(Module) ->
    lists:prefix("pyport_", atom_to_list(Module)).

public(py) -> true;
public(Module) -> lists:prefix("py_", atom_to_list(Module)).

%% Supervisors and the application callback start public modules' processes.
starter(Module) ->
    Attributes = Module:module_info(attributes),
    Behaviours = lists:append([B || {behaviour, B} <- Attributes]
                              ++ [B || {behavior, B} <- Attributes]),
    lists:member(supervisor, Behaviours) orelse lists:member(application, Behaviours).
