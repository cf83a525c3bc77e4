fn main() {
    procguard_common::run("FD_USAGE", check_fd_usage::check);
}
