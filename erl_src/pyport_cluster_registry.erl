%% This node's member of the cluster pool (docs/cluster.md): it joins the
%% `pg` group of the configured pool name in pyport's scope, keeps the
%% routing tables that py_cluster reads on every routed task, and
%% publishes this node's load (pending tasks per loop) to the other
%% members.
%%
%% Tables (named, public; only this process inserts and deletes rows):
%%   py_cluster_nodes  {Node, MemberPid}, this node included;
%%   py_cluster_loads  {{Node, Index}, Load, Sent}: Load as its node last
%%     published it (pending tasks, or `restarting`), Sent the tasks this
%%     node has routed there in the current interval (callers bump it,
%%     each tick and each publication reset it), so that the callers of
%%     one node do not all pick the same loop between two publications.
%%     Reset on the tick too, because a node whose loads do not change
%%     publishes nothing.
%%
%% Membership: each tick (cluster_load_interval_ms) reads the group from
%% pg (an ETS read); a new member is monitored and sent a hello with this
%% node's loads, which it answers with its own: its rows appear then. A
%% member's 'DOWN' (node gone, connection lost, application stopped)
%% removes its rows at once. Loads go to every member on a tick only when
%% they have changed, so an idle cluster sends nothing. Only members of
%% the group are listened to: a hello from a process pg does not list
%% (yet) is ignored, and this node's own tick sends the hello instead.
-module(pyport_cluster_registry).
-behaviour(gen_server).

%% API.
-export([scope/0]).
-export([nodes/0]).
-export([is_member/1]).
-export([loops/0]).
-export([sent/2]).

%% Internal API, for pyport_sup.
-export([start_link/0]).

%% gen_server.
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).

-define(NODES, py_cluster_nodes).
-define(LOADS, py_cluster_loads).
%% What one member may publish: more loops than this is not a pool.
-define(MAX_LOOPS, 4096).

-type load() :: non_neg_integer() | restarting.
-type row() :: {{node(), pos_integer()}, load(), non_neg_integer()}.
-export_type([load/0, row/0]).

-record(state, {
    group :: {pyport_pool, term()},
    interval :: pos_integer(),
    %% The node name rows are kept under: node() changes when
    %% distribution starts after the application.
    node :: node(),
    members = #{} :: #{pid() => {node(), reference()}},
    %% What this node last sent to every member.
    published = [] :: [{pos_integer(), load()}]
}).

%% API.

%% The `pg` scope of pyport's cluster (a child of pyport_sup).
-spec scope() -> atom().
scope() ->
    py_cluster_scope.

%% The nodes whose pools are members, this one included.
-spec nodes() -> [node()].
nodes() ->
    try lists:sort([N || {N, _} <- ets:tab2list(?NODES)])
    catch error:badarg -> []
    end.

-spec is_member(node()) -> boolean().
is_member(Node) ->
    try ets:member(?NODES, Node)
    catch error:badarg -> false
    end.

%% Every loop of the cluster with its load: what routing chooses from.
-spec loops() -> [row()].
loops() ->
    try ets:tab2list(?LOADS)
    catch error:badarg -> []
    end.

%% One more task routed to loop Index of Node.
-spec sent(node(), pos_integer()) -> ok.
sent(Node, Index) ->
    try ets:update_counter(?LOADS, {Node, Index}, {3, 1}) of
        _ -> ok
    catch
        %% The loop has just left the cluster.
        error:badarg -> ok
    end.

%% Internal API.

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% gen_server.

-spec init([]) -> {ok, #state{}} | {stop, term()}.
init([]) ->
    case pyport_config:cluster() of
        {ok, #{pool := Pool, load_interval_ms := Interval}} ->
            _ = ets:new(?NODES, [named_table, public, set, {read_concurrency, true}]),
            _ = ets:new(?LOADS, [named_table, public, set, {read_concurrency, true},
                                 {write_concurrency, true}]),
            Group = {pyport_pool, Pool},
            ok = pg:join(scope(), Group, self()),
            State = #state{group = Group, interval = Interval, node = node()},
            true = ets:insert(?NODES, {node(), self()}),
            {ok, tick(State)};
        {error, Reason} ->
            {stop, Reason}
    end.

-spec handle_call(term(), gen_server:from(), #state{})
    -> {reply, term(), #state{}}.
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info(tick, State) ->
    {noreply, tick(State)};
handle_info({py_cluster_loads, Pid, Loads}, #state{members = Members} = State)
  when is_map_key(Pid, Members) ->
    %% Peers are trusted (same cookie), but a malformed figure must not
    %% stop this process.
    _ = valid_loads(Loads) andalso store(Pid, Loads),
    {noreply, State};
handle_info({py_cluster_hello, Pid, Loads}, State) when is_pid(Pid) ->
    {noreply, hello(Pid, Loads, State)};
handle_info({'DOWN', MRef, process, Pid, _}, #state{members = Members} = State) ->
    case maps:take(Pid, Members) of
        {{Node, MRef}, Rest} ->
            forget(Node, Pid),
            {noreply, State#state{members = Rest}};
        _ ->
            {noreply, State}
    end;
handle_info(_Info, State) ->
    {noreply, State}.

%% Internal.

tick(#state{group = Group, interval = Interval, members = Members,
            published = Published} = State0) ->
    State = renamed(State0),
    Loads = pyport_calls:loads(),
    _ = ets:select_replace(?LOADS, [{{'$1', '$2', '$3'}, [{'=/=', '$3', 0}],
                                     [{{'$1', '$2', 0}}]}]),
    replace_rows(State#state.node, Loads),
    New = [P || P <- pg:get_members(scope(), Group),
                node(P) =/= node(), not maps:is_key(P, Members)],
    State1 = lists:foldl(fun monitor_member/2, State, New),
    _ = [P ! {py_cluster_hello, self(), Loads} || P <- New],
    _ = case Loads =:= Published of
            true -> ok;
            false -> [P ! {py_cluster_loads, self(), Loads}
                      || P <- maps:keys(Members)]
        end,
    erlang:send_after(Interval, self(), tick),
    State1#state{published = Loads}.

%% Distribution started (or stopped) since the last tick: this node's
%% rows move to its new name.
renamed(#state{node = Node} = State) ->
    case node() of
        Node ->
            State;
        New ->
            forget(Node, self()),
            true = ets:insert(?NODES, {New, self()}),
            State#state{node = New}
    end.

monitor_member(Pid, #state{members = Members} = State) ->
    State#state{members = Members#{Pid => {node(Pid), erlang:monitor(process, Pid)}}}.

%% A member met for the first time, or met again: it is answered with
%% this node's loads, and its own become its rows.
hello(Pid, Loads, #state{group = Group, members = Members, published = Mine} = State0) ->
    Known = maps:is_key(Pid, Members),
    case node(Pid) =/= node() andalso valid_loads(Loads)
        andalso (Known orelse lists:member(Pid, pg:get_members(scope(), Group))) of
        true ->
            State = case Known of
                        true -> State0;
                        false -> monitor_member(Pid, State0)
                    end,
            Pid ! {py_cluster_loads, self(), Mine},
            store(Pid, Loads),
            State;
        false ->
            State0
    end.

store(Pid, Loads) ->
    Node = node(Pid),
    true = ets:insert(?NODES, {Node, Pid}),
    replace_rows(Node, Loads).

%% New rows first, then those of loops the node no longer has, so that a
%% reader never sees the node without loops.
replace_rows(Node, Loads) ->
    true = ets:insert(?LOADS, [{{Node, I}, Load, 0} || {I, Load} <- Loads]),
    Old = [I || [I] <- ets:match(?LOADS, {{Node, '$1'}, '_', '_'})],
    _ = [ets:delete(?LOADS, {Node, I}) || I <- Old, not lists:keymember(I, 1, Loads)],
    ok.

forget(Node, Pid) ->
    case ets:lookup(?NODES, Node) of
        %% The node came back (a restarted application) and its new
        %% member has already published: those rows are its.
        [{Node, Successor}] when Successor =/= Pid ->
            ok;
        _ ->
            true = ets:delete(?NODES, Node),
            true = ets:match_delete(?LOADS, {{Node, '_'}, '_', '_'}),
            ok
    end.

valid_loads(Loads) when is_list(Loads) ->
    try length(Loads) =< ?MAX_LOOPS andalso lists:all(fun valid_load/1, Loads)
    catch error:badarg -> false
    end;
valid_loads(_) ->
    false.

valid_load({I, restarting}) -> is_integer(I) andalso I > 0;
valid_load({I, N}) -> is_integer(I) andalso I > 0 andalso is_integer(N) andalso N >= 0;
valid_load(_) -> false.
