// floodgate: the milter daemon. Parses flags, then hands over to run_daemon().
#include <boost/program_options.hpp>

#include <iostream>

#include "milter/daemon.hpp"
#include "policy/config_loader.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  po::options_description options("floodgate: contains outbound mail bursts, as a milter.\nOptions");
  options.add_options()
      ("help,h", "show this help")
      ("config,c", po::value<std::string>()->default_value("/etc/floodgate/floodgate.yaml"), "configuration file")
      ("socket,s", po::value<std::string>(), "milter socket, overrides the config (inet:PORT@HOST or unix:/path)")
      ("redis,r", po::value<std::string>(), "Redis URL, overrides the config (redis://host:port/db or unix:/path)")
      ("user,u", po::value<std::string>(), "after opening the socket as root, run as USER[:GROUP] (overrides milter.user)")
      ("foreground,f", "log to stderr instead of syslog")
      ("check-config", "validate the configuration, print every problem, and exit")
      ("version,V", "print the version and exit");

  po::variables_map flags;
  try {
    po::store(po::parse_command_line(argc, argv, options), flags);
    po::notify(flags);
  } catch (const po::error& error) {
    std::cerr << "floodgate: " << error.what() << "\n" << options << "\n";
    return 2;
  }
  if (flags.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  if (flags.count("version")) {
    std::cout << "floodgate " << FLOODGATE_VERSION << "\n";
    return 0;
  }

  floodgate::milter::DaemonOptions daemon_options;
  daemon_options.config_path = flags["config"].as<std::string>();
  if (flags.count("socket")) daemon_options.socket_override = flags["socket"].as<std::string>();
  if (flags.count("redis")) daemon_options.redis_override = flags["redis"].as<std::string>();
  if (flags.count("user")) daemon_options.user_override = flags["user"].as<std::string>();
  daemon_options.foreground = flags.count("foreground") > 0;

  try {
    if (flags.count("check-config")) {
      floodgate::milter::load_daemon_config(daemon_options);
      std::cout << daemon_options.config_path << ": configuration OK\n";
      return 0;
    }
    return floodgate::milter::run_daemon(daemon_options);
  } catch (const floodgate::policy::ConfigError& error) {
    for (const auto& issue : error.issues()) std::cerr << issue.to_string() << "\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "floodgate: " << error.what() << "\n";
    return 1;
  }
}
