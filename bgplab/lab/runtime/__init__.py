"""Where a lab's nodes live: network namespaces (netns) today; containers are to come."""
