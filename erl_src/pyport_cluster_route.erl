%% Where a cluster task goes, as pure functions of the loops' rows
%% (pyport_cluster_registry:loops/0), so that they can be tested alone.
%%
%% - least_loaded/2: the loop with the fewest tasks (published load plus
%%   what this node has sent there in the current interval), a loop of this node preferred
%%   at equal load, ties broken at random so that callers spread; a loop
%%   that is restarting only when every loop is.
%% - by_key/2: rendezvous (highest random weight) hashing: a key goes to
%%   the loop with the highest hash of {Key, Node, Index}. While the set
%%   of loops is stable a key always lands on the same loop; when a node
%%   joins or leaves, only the keys of the loops it brings or takes move.
-module(pyport_cluster_route).

%% API.
-export([least_loaded/2]).
-export([by_key/2]).

-type target() :: {node(), pos_integer()}.
-export_type([target/0]).

%% API.

-spec least_loaded([pyport_cluster_registry:row()], node()) -> target() | none.
least_loaded([], _Local) ->
    none;
least_loaded(Rows, Local) ->
    Scored = [{score(Load, Sent), preference(Node, Local), {Node, I}}
              || {{Node, I}, Load, Sent} <- Rows],
    {Best, Pref, _} = lists:min(Scored),
    Ties = [T || {S, P, T} <- Scored, S =:= Best, P =:= Pref],
    lists:nth(rand:uniform(length(Ties)), Ties).

-spec by_key(term(), [pyport_cluster_registry:row()]) -> target() | none.
by_key(_Key, []) ->
    none;
by_key(Key, Rows) ->
    {_, Target} = lists:max([{erlang:phash2({Key, Node, I}, 1 bsl 32), {Node, I}}
                             || {{Node, I}, _, _} <- Rows]),
    Target.

%% Internal.

%% A live loop before any restarting one.
score(restarting, Sent) -> {1, Sent};
score(Load, Sent) -> {0, Load + Sent}.

preference(Local, Local) -> 0;
preference(_, _) -> 1.
