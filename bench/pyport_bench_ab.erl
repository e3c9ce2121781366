%% `make bench-ab`: the summary of an A/B run. bench/bench_ab.sh runs
%% bench/pyport_bench.erl once per round against each build, alternating,
%% each run writing its figures as terms (BENCH_TERMS); this module reads
%% them back and prints, per scenario, the median of each build over the
%% rounds and the ratio HEAD/BASE.
-module(pyport_bench_ab).

%% API.
-export([main/1]).

%% API.

-spec main([string()]) -> no_return().
main([Dir, BaseLabel, HeadLabel]) ->
    try report(Dir, BaseLabel, HeadLabel) of
        ok -> halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "bench-ab failed: ~p:~p~n~p~n", [Class, Reason, Stack]),
            halt(1)
    end.

%% Internals.

report(Dir, BaseLabel, HeadLabel) ->
    Base = samples(filelib:wildcard(filename:join(Dir, "base-*.terms"))),
    Head = samples(filelib:wildcard(filename:join(Dir, "head-*.terms"))),
    io:format("~n== bench-ab: HEAD ~s against BASE ~s, ~p/~p rounds ==~n",
              [HeadLabel, BaseLabel, rounds(Head), rounds(Base)]),
    io:format("~-70s ~25s ~25s ~9s~n", ["scenario", "BASE median (min..max)",
                                        "HEAD median (min..max)", "HEAD/BASE"]),
    lists:foreach(fun({Name, Unit, HigherIsBetter}) ->
        B = maps:get(Name, Base, []),
        H = maps:get(Name, Head, []),
        Ratio = case {B, H} of
            {[_ | _], [_ | _]} ->
                io_lib:format("~.2f", [median(H) / max_abs(median(B))]);
            _ -> "-"
        end,
        Better = case HigherIsBetter of true -> ""; false -> " (lower is better)" end,
        io:format("~-70s ~25s ~25s ~9s  ~s~s~n",
                  [Name, cell(B), cell(H), Ratio, Unit, Better])
    end, names(Dir)),
    ok.

%% Scenario name -> samples over all rounds (each run holds one sample
%% per scenario and build).
samples(Files) ->
    lists:foldl(fun(File, Acc) ->
        {ok, Figures} = file:consult(File),
        lists:foldl(fun(#{name := Name, pyport := Xs}, A) ->
                            maps:update_with(Name, fun(Old) -> Old ++ Xs end, Xs, A)
                    end, Acc, Figures)
    end, #{}, Files).

rounds(Samples) ->
    lists:max([0 | [length(Xs) || Xs <- maps:values(Samples)]]).

%% In the order the bench prints them, from the first HEAD run.
names(Dir) ->
    case filelib:wildcard(filename:join(Dir, "head-*.terms")) of
        [First | _] ->
            {ok, Figures} = file:consult(First),
            [{N, U, H} || #{name := N, unit := U, higher_is_better := H} <- Figures];
        [] ->
            []
    end.

cell([]) -> "-";
cell(Xs) -> lists:flatten(io_lib:format("~s (~s..~s)", [fmt(median(Xs)), fmt(lists:min(Xs)),
                                                       fmt(lists:max(Xs))])).

max_abs(X) when X == 0 -> 1.0e-9;
max_abs(X) -> X.

median(Xs) ->
    S = lists:sort(Xs),
    L = length(S),
    case L rem 2 of
        1 -> lists:nth(L div 2 + 1, S);
        0 -> (lists:nth(L div 2, S) + lists:nth(L div 2 + 1, S)) / 2
    end.

fmt(X) when X >= 100 -> integer_to_list(round(X));
fmt(X) -> lists:flatten(io_lib:format("~.2f", [float(X)])).
