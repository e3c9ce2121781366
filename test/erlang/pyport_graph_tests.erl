%% The shape of the Erlang side, checked on the built beams: no cycle in
%% the module call graph (xref's module graph, strongly connected
%% components).
-module(pyport_graph_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec no_cycle_test() -> ok.
no_cycle_test() ->
    ?assertEqual([], with_graph(fun digraph_utils:cyclic_strong_components/1)).

%% Internal.

with_graph(Fun) ->
    Ebin = filename:dirname(code:which(pyport_calls)),
    {ok, Xref} = xref:start([{xref_mode, modules}]),
    try
        {ok, _} = xref:add_directory(Xref, Ebin, [{warnings, false}]),
        {ok, Edges} = xref:q(Xref, "ME"),
        G = digraph:new(),
        try
            [begin
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
