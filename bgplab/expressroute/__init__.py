"""Azure ExpressRoute as configuration: circuits, peerings, route filters, VNets and the services catalogue."""
