# bash completion for squibnetctl, squibnet and squibnet-ping (installed under each name).
#
# squibnetctl: its options, the commands word by word, and the arguments that name things of
# the running switch: port names (port del, fdb flush, capture ports=A+B, gvproxy --port) and
# capture IDs (capture stop). The commands come from the switch's own 'help' when it answers,
# else from 'squibnetctl --help' (the library's tables); names come through squibnetctl, from
# the control socket the command line names (-c/--control), else the default one.
# squibnet and squibnet-ping: their options, from their --help.

# The --control arguments of the command line being completed, one word a line.
_squibnetctl_control_args()
{
    local i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --) return ;;
            -c | --control)
                ((i + 1 < cword)) && printf '%s\n' --control "${words[i + 1]}"
                ((i++))
                ;;
            --control=*) printf '%s\n' "${words[i]}" ;;
        esac
    done
}

# Command names, one a line ("fdb flush"): the leading words of each usage (which ends at two
# blanks), up to its first argument (a word with a capital letter, a bracket or a bar).
_squibnetctl_commands()
{
    local names='{ s = $0; sub(/^ +/, "", s); sub(/  .*/, "", s); m = split(s, f, " "); n = ""
        for (i = 1; i <= m && f[i] !~ /[A-Z[|<]/; i++) n = n (n ? " " : "") f[i]; if (n) print n }'
    local out
    if out=$("$1" "${ctl_args[@]}" help 2>/dev/null) && [[ $out ]]; then
        # the switch's help: usages start in column 0, descriptions are indented
        awk "/^[^ ]/ $names" <<<"$out"
    else
        "$1" --help 2>/dev/null | awk "/^commands/ { on = 1; next } on && /^\$/ { exit } on && /^  [^ ]/ $names"
    fi
}

_squibnetctl_ports()
{
    "$1" "${ctl_args[@]}" ports 2>/dev/null | awk 'NR > 1 { print $1 }'
}

_squibnetctl()
{
    local cur prev words cword
    _init_completion -n = || return

    local ctl=$1 i opts_end=0 c cmd="" cmdlen=0
    local -a ctl_args args cmds matches names w
    mapfile -t ctl_args < <(_squibnetctl_control_args)

    case $prev in
        -c | --control)
            _filedir
            return
            ;;
    esac
    if [[ $cur == --control=* ]]; then
        cur=${cur#--control=}
        _filedir
        return
    fi

    # the words of the command typed so far, the global options and their arguments left out
    for ((i = 1; i < cword; i++)); do
        if ((opts_end)); then
            args+=("${words[i]}")
            continue
        fi
        case ${words[i]} in
            --) ((${#args[@]})) && opts_end=1 ;;
            -c | --control) ((i++)) ;;
            --control=* | -j | --json | -h | --help | -V | --version) ;;
            *) args+=("${words[i]}") ;;
        esac
    done

    # which command those words spell, or the next words they may go on with
    mapfile -t cmds < <(_squibnetctl_commands "$ctl")
    for c in "${cmds[@]}"; do
        read -ra w <<<"$c"
        for ((i = 0; i < ${#args[@]} && i < ${#w[@]}; i++)); do
            [[ ${w[i]} == "${args[i]}" ]] || continue 2
        done
        if ((${#args[@]} < ${#w[@]})); then
            matches+=("${w[${#args[@]}]}")
        elif ((${#w[@]} > cmdlen)); then
            cmd=$c # the longest one ("fdb flush" rather than "fdb")
            cmdlen=${#w[@]}
        fi
    done

    if [[ ($cmd == "capture start" || $cmd == "capture -w") && ${#args[@]} -eq $cmdlen ]]; then
        _filedir pcap # the FILE ('-': standard output)
        return
    fi
    if [[ $cur == -* ]] && ((!opts_end)); then
        local extra=""
        [[ $cmd == gvproxy* ]] && extra="--proto --port"
        COMPREPLY=($(compgen -W "-c --control -j --json -h --help -V --version $extra ${matches[*]}" -- "$cur"))
        return
    fi
    if ((${#matches[@]})); then
        COMPREPLY=($(compgen -W "$(printf '%s\n' "${matches[@]}" | sort -u)" -- "$cur"))
        return
    fi

    case $cmd in
        "port del" | "port set" | "fdb flush" | "tunnel show" | "tunnel flood add" | "tunnel flood del")
            ((${#args[@]} == cmdlen)) || return
            mapfile -t names < <(_squibnetctl_ports "$ctl")
            COMPREPLY=($(compgen -W "${names[*]}" -- "$cur"))
            ;;
        "capture stop")
            ((${#args[@]} == cmdlen)) || return
            COMPREPLY=($(compgen -W "$("$ctl" "${ctl_args[@]}" capture list 2>/dev/null | awk 'NR > 1 { print $1 }')" -- "$cur"))
            ;;
        "capture start" | "capture -w")
            compopt -o nospace
            case $cur in
                ports=*)
                    # ports=A+B: the name after the last '+'
                    local tail=${cur##*[=+]}
                    mapfile -t names < <(_squibnetctl_ports "$ctl")
                    COMPREPLY=($(compgen -P "${cur%"$tail"}" -W "${names[*]}" -- "$tail"))
                    ;;
                dir=*) COMPREPLY=($(compgen -P dir= -W 'in out both' -- "${cur#dir=}")) ;;
                tstamp=*) COMPREPLY=($(compgen -P tstamp= -W 'us ns' -- "${cur#tstamp=}")) ;;
                *=*) ;;
                *) COMPREPLY=($(compgen -W 'filter= ports= dir= snaplen= tstamp= rotate= count=' -- "$cur")) ;;
            esac
            ;;
        "gvproxy expose" | "gvproxy unexpose" | "gvproxy list")
            case $prev in
                --proto) COMPREPLY=($(compgen -W 'tcp udp' -- "$cur")) ;;
                --port)
                    mapfile -t names < <(_squibnetctl_ports "$ctl")
                    COMPREPLY=($(compgen -W "${names[*]}" -- "$cur"))
                    ;;
            esac
            ;;
        "port add")
            # the kinds, from the squibnet beside this squibnetctl (or on PATH)
            ((${#args[@]} == cmdlen)) && [[ $cur != *,* ]] || return
            local sn=${ctl%ctl}
            [[ $sn == */* ]] || sn=$(type -P squibnet)
            [[ -x $sn ]] || return
            COMPREPLY=($(compgen -W "$("$sn" --help 2>/dev/null | awk '/kinds this build has:/ { on = 1; next }
                on && /^  every kind/ { exit } on && /^  [a-z]/ { sub(/^  /, ""); sub(/[,[ ].*/, ","); print }' |
                sort -u)" -- "$cur"))
            compopt -o nospace
            ;;
    esac
    # readline replaces only what follows the last '=' of the word ('=' breaks words)
    if [[ $cur == *=* && $COMP_WORDBREAKS == *=* ]]; then
        local lead=${cur%"${cur##*=}"}
        COMPREPLY=("${COMPREPLY[@]#"$lead"}")
    fi
}

_squibnet_options()
{
    local cur prev words cword
    _init_completion || return
    case $prev in
        --control | --capture | --config | --local | -c)
            _filedir
            return
            ;;
    esac
    [[ $cur == -* ]] && COMPREPLY=($(compgen -W '$(_parse_help "$1")' -- "$cur"))
}

complete -F _squibnetctl squibnetctl
complete -F _squibnet_options squibnet squibnet-ping
